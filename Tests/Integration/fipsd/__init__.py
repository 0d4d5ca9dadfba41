"""The fipsd end-to-end checks, one module per concern; Tests/Integration/check_fipsd.py runs them."""
