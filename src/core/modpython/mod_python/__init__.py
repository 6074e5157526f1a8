# mod_python for oxwsgi: the package mod_python handlers import, written for oxwsgi from
# mod_python 3.5's documentation. It is compiled into mod_oxwsgi.so and installed into
# sys.modules by the module itself (src/core/modpython/mod.rs); it is not on sys.path.

__all__ = ["apache", "util", "wsgi", "Cookie", "publisher", "Session", "psp", "cgihandler"]

version = "3.5.0"
oxwsgi = True
