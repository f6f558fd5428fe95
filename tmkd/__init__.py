"""TMKD, the paper in code (method.py) and the machinery that runs it; helpers.py is the notebooks' import surface."""
