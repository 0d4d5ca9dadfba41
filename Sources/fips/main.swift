print("fips")
