"""
The management listener: Prometheus metrics (and, to come, the JSON API and
console), one twisted.web site.
"""
