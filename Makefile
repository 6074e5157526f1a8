# oxwsgi -- build, install, test, serve.  `make help` lists the targets.
#
# The Apache and nginx modules come from the same crate built with different cargo
# features (one cdylib can only be one server's module), so `make modules` builds twice
# and copies each result to target/modules/.

CARGO    ?= cargo
PROFILE  ?= release
PREFIX   ?= /usr
MODULES  := target/modules
CARGO_FLAGS := $(if $(filter release,$(PROFILE)),--release,)
OUT      := target/$(if $(filter release,$(PROFILE)),release,debug)

.PHONY: all help deps modules apache nginx launcher install test lint unit conformance serve bench clean

all: modules launcher

help:
	@echo "make deps        install missing Debian packages (apt)"
	@echo "make modules     build $(MODULES)/mod_oxwsgi.so and $(MODULES)/ngx_http_oxwsgi_module.so"
	@echo "make install     install both modules (a2enmod oxwsgi / nginx modules-available)"
	@echo "make serve       deps + build + serve the example app under Apache on 127.0.0.1:8000"
	@echo "make test        deps + lint (fmt, clippy, doc) + build + every test (unit, Apache, nginx, conformance)"
	@echo "make lint        cargo fmt --check, clippy -D warnings (both modules, launcher), cargo doc -D warnings"
	@echo "make bench       benchmarks against the peers (bench/README.md)"

deps:
	./scripts/deps.sh

modules: apache nginx

apache:
	$(CARGO) build $(CARGO_FLAGS) --lib --features apache
	@mkdir -p $(MODULES)
	cp $(OUT)/liboxwsgi.so $(MODULES)/mod_oxwsgi.so

nginx:
	$(CARGO) build $(CARGO_FLAGS) --lib --features nginx
	@mkdir -p $(MODULES)
	cp $(OUT)/liboxwsgi.so $(MODULES)/ngx_http_oxwsgi_module.so

launcher:
	$(CARGO) build $(CARGO_FLAGS) -p oxwsgi-cli

install: modules launcher
	install -D -m 755 $(OUT)/oxwsgi $(DESTDIR)$(PREFIX)/bin/oxwsgi
	install -D -m 644 $(MODULES)/mod_oxwsgi.so $(DESTDIR)$(PREFIX)/lib/apache2/modules/mod_oxwsgi.so
	install -d $(DESTDIR)/etc/apache2/mods-available
	echo "LoadModule oxwsgi_module $(PREFIX)/lib/apache2/modules/mod_oxwsgi.so" \
		> $(DESTDIR)/etc/apache2/mods-available/oxwsgi.load
	install -D -m 644 $(MODULES)/ngx_http_oxwsgi_module.so $(DESTDIR)$(PREFIX)/lib/nginx/modules/ngx_http_oxwsgi_module.so
	install -d $(DESTDIR)$(PREFIX)/share/nginx/modules-available
	echo "load_module modules/ngx_http_oxwsgi_module.so;" \
		> $(DESTDIR)$(PREFIX)/share/nginx/modules-available/mod-http-oxwsgi.conf
	@echo "installed: enable with 'a2enmod oxwsgi' (Apache) or"
	@echo "  ln -s $(PREFIX)/share/nginx/modules-available/mod-http-oxwsgi.conf /etc/nginx/modules-enabled/50-mod-http-oxwsgi.conf (nginx)"

# Style and static checks, fast and first: formatting, clippy for each module flavour and
# the launcher (warnings are errors), and the API docs (broken links/HTML are errors).
# Each server's module is its own build (features are exclusive), so each is checked.
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy --lib --features apache -- -D warnings
	$(CARGO) clippy --lib --features nginx -- -D warnings
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --no-deps -p oxwsgi-cli -p oxwsgi-checks
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --no-deps -p oxwsgi --lib --features apache
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --no-deps -p oxwsgi --lib --features nginx

# Unit tests of the core (with a real interpreter), the shared checks and the launcher.
unit:
	$(CARGO) test --workspace --lib --bins

# Every server flavour runs the same conformance suite (modwsgi = Debian's mod_wsgi, the
# reference: its known PEP 3333 deviations are strict xfails); then the Apache-only,
# nginx-only and launcher tests.
TEST_SERVERS ?= apache,apache-prefork,apache-worker,apache-daemon,nginx,nginx-daemon,modwsgi
conformance: modules launcher
	OXWSGI_MODULE_DIR=$(CURDIR)/$(MODULES) OXWSGI_SERVERS=$(TEST_SERVERS) ./tests/run-conformance.sh
	OXWSGI_MODULE_DIR=$(CURDIR)/$(MODULES) ./tests/run-apache.sh
	OXWSGI_MODULE_DIR=$(CURDIR)/$(MODULES) ./tests/run-nginx.sh
	OXWSGI_MODULE_DIR=$(CURDIR)/$(MODULES) OXWSGI_BIN=$(CURDIR)/$(OUT)/oxwsgi ./tests/run-launcher.sh

test: deps lint unit modules conformance

# The demo app under Apache (SERVER=nginx for nginx) on 127.0.0.1:8000 (PORT=...).
SERVER ?= apache
PORT   ?= 8000
serve: deps modules launcher
	OXWSGI_MODULE_DIR=$(CURDIR)/$(MODULES) $(OUT)/oxwsgi serve --server $(SERVER) --port $(PORT)

bench: deps modules
	./bench/run.sh

clean:
	$(CARGO) clean
