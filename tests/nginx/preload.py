# Preloaded with wsgi_import: proves it ran in each worker at start-up.
import os
print("oxwsgi preload ran in pid %d" % os.getpid())
