"""Operations: metrics, access log, API and dashboard, ping, wsgate's own log.

The data path imports only :mod:`wsgate.ops.observer`; :mod:`wsgate.ops.wiring` builds the
rest from the static configuration. See docs/operations.md.
"""
