"""In-process services: protocols that run inside wsgate and are routed like any other."""
