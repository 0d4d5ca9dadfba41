print("fips-run")
