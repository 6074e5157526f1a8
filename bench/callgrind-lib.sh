# Shared by bench/callgrind-apache.sh and bench/callgrind-apache-whole.sh (sourced):
# a www-data-readable stage with the module, and the head of an httpd.conf that runs
# Debian's apache2 as one prefork process on 127.0.0.1:$PORT.

# new_stage PREFIX: make the stage (run/, logs/, cg/), copy mod_oxwsgi.so from $MODDIR,
# set $stage.
new_stage() {
    stage=$(mktemp -d "/tmp/$1.XXXXXX")
    chmod 755 "$stage"
    mkdir -p "$stage/run" "$stage/logs" "$stage/cg"
    cp "$MODDIR/mod_oxwsgi.so" "$stage/"
}

# conf_head: the configuration every callgrind run shares (the caller adds its mounts).
# A fixed hash seed: with a random one, dict layouts (and so counts) differ per run.
conf_head() {
    M=/usr/lib/apache2/modules
    cat <<CONF
ServerRoot "$stage"
ServerName 127.0.0.1
Listen 127.0.0.1:$PORT
PidFile "$stage/run/httpd.pid"
DefaultRuntimeDir "$stage/run"
ErrorLog "$stage/logs/error.log"
LoadModule mpm_prefork_module $M/mod_mpm_prefork.so
LoadModule authz_core_module $M/mod_authz_core.so
LoadModule oxwsgi_module $stage/mod_oxwsgi.so
WSGIPythonHashSeed 0
CONF
}
