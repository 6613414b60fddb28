"""
Reusable test parts: real servers and clients for the integration and
contract tests (fixtures stay thin and import these).
"""
