"""Start and stop real Apache httpd / nginx servers for the conformance suite.

    from harness import servers
    srv = servers.create("modwsgi")   # or "apache", "apache-prefork", "nginx"
    srv.start(); ...; srv.stop()

See servers.py for the names and the environment variables that steer it.
"""
