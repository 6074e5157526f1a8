/*
 * mod_oxwsgi.c -- the C half of the Apache httpd 2.4 module.
 *
 * Only what C macros express lives here: the directive table, per-directory
 * config create/merge, hook registration and the APR bucket/brigade plumbing.
 * Every decision is made in Rust (src/apache/); each hook below is a thunk.
 *
 * The `module oxwsgi_module` symbol itself is defined in Rust (a cdylib only
 * exports Rust items, see docs/build.md); we reference it as an extern.
 */
#include "httpd.h"
#include "http_config.h"
#include "http_core.h"
#include "http_log.h"
#include "http_protocol.h"
#include "http_request.h"
#include "ap_mpm.h"
#include "apr_strings.h"
#include "util_filter.h"
#include "scoreboard.h"
#include "mod_auth.h"
#include "ap_provider.h"

#include <unistd.h>

#include "oxwsgi_apache.h"

/*
 * The same module record is exported twice (src/apache/mod.rs): as oxwsgi_module and,
 * for `LoadModule wsgi_module .../mod_oxwsgi.so`, as wsgi_module. `oxwsgi_self` is the
 * one httpd loaded (set in register_hooks); per-directory configs and log lines use it.
 */
extern module AP_MODULE_DECLARE_DATA oxwsgi_module;
extern module AP_MODULE_DECLARE_DATA wsgi_module;
static module *oxwsgi_self;
/* Both records were loaded (two LoadModule lines for mod_oxwsgi.so). */
static int oxwsgi_loaded_twice;
#undef APLOG_MODULE_INDEX
#define APLOG_MODULE_INDEX (oxwsgi_self ? oxwsgi_self->module_index : APLOG_NO_MODULE)

/* Rust entry points (src/apache/entry.rs). All of them catch panics. */
extern const char *oxwsgi_rs_directive(cmd_parms *cmd, void *dconf, int argc,
                                       char *const argv[]);
extern int oxwsgi_rs_pre_config(apr_pool_t *pconf, apr_pool_t *plog,
                                apr_pool_t *ptemp);
extern int oxwsgi_rs_check_config(apr_pool_t *pconf, apr_pool_t *plog,
                                  apr_pool_t *ptemp, server_rec *s);
extern int oxwsgi_rs_post_config(apr_pool_t *pconf, apr_pool_t *plog,
                                 apr_pool_t *ptemp, server_rec *s);
extern void oxwsgi_rs_child_init(apr_pool_t *p, server_rec *s);
extern int oxwsgi_rs_translate_name(request_rec *r);
extern int oxwsgi_rs_handler(request_rec *r);
extern int oxwsgi_rs_allow_access(request_rec *r, const char *host);
extern int oxwsgi_rs_check_password(request_rec *r, const char *user,
                                    const char *password);
extern int oxwsgi_rs_user_in_groups(request_rec *r, const char *user,
                                    const char *groups);
extern int oxwsgi_rs_get_realm_hash(request_rec *r, const char *user,
                                    const char *realm, char **rethash);
extern const void *oxwsgi_rs_mp_merge(apr_pool_t *p, const void *base,
                                      const void *add);
extern int oxwsgi_rs_mp_phase(request_rec *r, int phase);
extern apr_status_t oxwsgi_rs_mp_output_filter(ap_filter_t *f, apr_bucket_brigade *bb);
extern apr_status_t oxwsgi_rs_mp_input_filter(ap_filter_t *f, apr_bucket_brigade *bb,
                                              int mode, int block, apr_off_t readbytes);


/* ---- directives --------------------------------------------------------- */

static const char *
oxwsgi_directive(cmd_parms *cmd, void *dconf, int argc, char *const argv[])
{
    return oxwsgi_rs_directive(cmd, dconf, argc, argv);
}

#define DIRECTIVE(name, id, where, help) \
    AP_INIT_TAKE_ARGV(name, oxwsgi_directive, (void *)(long)(id), where, help)

#define UNSUPPORTED(name) \
    DIRECTIVE(name, OXWSGI_D_UNSUPPORTED, RSRC_CONF | ACCESS_CONF | OR_ALL, \
              "mod_wsgi directive not supported by oxwsgi yet")

const command_rec oxwsgi_cmds[] = {
    DIRECTIVE("WSGIScriptAlias", OXWSGI_D_SCRIPT_ALIAS, RSRC_CONF,
              "URL-path file-path [process-group=...] [application-group=...]"),
    DIRECTIVE("WSGIScriptAliasMatch", OXWSGI_D_SCRIPT_ALIAS_MATCH, RSRC_CONF,
              "regex file-path [process-group=...] [application-group=...]"),
    DIRECTIVE("WSGIPythonHome", OXWSGI_D_PYTHON_HOME, RSRC_CONF,
              "Python prefix or virtualenv directory"),
    DIRECTIVE("WSGIPythonPath", OXWSGI_D_PYTHON_PATH, RSRC_CONF,
              "directories added to sys.path (':'-separated)"),
    DIRECTIVE("WSGICallableObject", OXWSGI_D_CALLABLE_OBJECT,
              OR_FILEINFO | ACCESS_CONF | RSRC_CONF,
              "name of the WSGI application object in the script"),
    DIRECTIVE("WSGIImportScript", OXWSGI_D_IMPORT_SCRIPT, RSRC_CONF,
              "script preloaded when a child process starts"),
    DIRECTIVE("WSGIPassAuthorization", OXWSGI_D_PASS_AUTHORIZATION,
              OR_AUTHCFG | ACCESS_CONF | RSRC_CONF,
              "On|Off: pass the Authorization header to the application"),
    DIRECTIVE("WSGIChunkedRequest", OXWSGI_D_CHUNKED_REQUEST,
              OR_FILEINFO | ACCESS_CONF | RSRC_CONF,
              "On|Off: accept chunked request bodies"),
    DIRECTIVE("WSGIApplicationGroup", OXWSGI_D_APPLICATION_GROUP,
              ACCESS_CONF | RSRC_CONF,
              "application group (all run in the main interpreter)"),
    DIRECTIVE("WSGIScriptReloading", OXWSGI_D_SCRIPT_RELOADING,
              OR_FILEINFO | ACCESS_CONF | RSRC_CONF,
              "On|Off: re-import a script whose modification time changed"),
    DIRECTIVE("WSGIProcessGroup", OXWSGI_D_PROCESS_GROUP,
              ACCESS_CONF | RSRC_CONF,
              "name of a WSGIDaemonProcess group, %{GLOBAL} or %{ENV:variable}"),
    DIRECTIVE("WSGIRestrictEmbedded", OXWSGI_D_RESTRICT_EMBEDDED, RSRC_CONF,
              "On|Off: On keeps Python out of Apache's own children"),
    DIRECTIVE("WSGIDaemonProcess", OXWSGI_D_DAEMON_PROCESS, RSRC_CONF,
              "name [options]: a daemon process group"),
    DIRECTIVE("WSGISocketPrefix", OXWSGI_D_SOCKET_PREFIX, RSRC_CONF,
              "path prefix of the daemon groups' sockets"),
    DIRECTIVE("WSGILazyInitialization", OXWSGI_D_LAZY_INITIALIZATION,
              RSRC_CONF, "On only: Python always starts in the child"),
    DIRECTIVE("WSGIPythonOptimize", OXWSGI_D_PYTHON_OPTIMIZE, RSRC_CONF,
              "0, 1 or 2, like python -O"),
    DIRECTIVE("WSGIPythonHashSeed", OXWSGI_D_PYTHON_HASH_SEED, RSRC_CONF,
              "random or a number, like PYTHONHASHSEED"),
    DIRECTIVE("WSGIDontWriteBytecode", OXWSGI_D_DONT_WRITE_BYTECODE, RSRC_CONF,
              "On|Off, like PYTHONDONTWRITEBYTECODE"),
    DIRECTIVE("WSGIPythonWarnings", OXWSGI_D_PYTHON_WARNINGS, RSRC_CONF,
              "a warnings filter, like python -W"),
    DIRECTIVE("WSGISwitchInterval", OXWSGI_D_SWITCH_INTERVAL, RSRC_CONF,
              "seconds, like sys.setswitchinterval()"),
    /* mod_wsgi compatibility: src/apache/compat.rs. Contexts as in mod_wsgi 4.9. */
    DIRECTIVE("WSGIRestrictStdin", OXWSGI_D_RESTRICT_STDIN, RSRC_CONF,
              "On|Off: sys.stdin raises on use"),
    DIRECTIVE("WSGIRestrictStdout", OXWSGI_D_RESTRICT_STDOUT, RSRC_CONF,
              "On|Off: sys.stdout raises on use (print())"),
    DIRECTIVE("WSGIRestrictSignal", OXWSGI_D_RESTRICT_SIGNAL, RSRC_CONF,
              "On|Off: signal.signal() registrations are ignored (default On)"),
    DIRECTIVE("WSGIPythonEggs", OXWSGI_D_PYTHON_EGGS, RSRC_CONF,
              "directory for PYTHON_EGG_CACHE"),
    DIRECTIVE("WSGITrustedProxies", OXWSGI_D_TRUSTED_PROXIES,
              OR_FILEINFO | ACCESS_CONF | RSRC_CONF,
              "addresses/subnets of proxies whose WSGITrustedProxyHeaders count"),
    DIRECTIVE("WSGITrustedProxyHeaders", OXWSGI_D_TRUSTED_PROXY_HEADERS,
              OR_FILEINFO | ACCESS_CONF | RSRC_CONF,
              "X-Forwarded-* headers to apply to the environ"),
    DIRECTIVE("WSGIMapHEADToGET", OXWSGI_D_MAP_HEAD_TO_GET,
              OR_FILEINFO | ACCESS_CONF | RSRC_CONF,
              "On|Off|Auto: run HEAD requests as GET"),
    DIRECTIVE("WSGIEnableSendfile", OXWSGI_D_ENABLE_SENDFILE,
              OR_FILEINFO | ACCESS_CONF | RSRC_CONF,
              "On|Off: sendfile() for wsgi.file_wrapper"),
    DIRECTIVE("WSGIErrorOverride", OXWSGI_D_ERROR_OVERRIDE,
              OR_FILEINFO | ACCESS_CONF | RSRC_CONF,
              "On|Off: Apache error pages for daemon mode responses"),
    DIRECTIVE("WSGICaseSensitivity", OXWSGI_D_CASE_SENSITIVITY, RSRC_CONF,
              "On|Off: whether script file names are case sensitive"),
    DIRECTIVE("WSGIDestroyInterpreter", OXWSGI_D_DESTROY_INTERPRETER, RSRC_CONF,
              "On|Off: run exit functions when a child stops"),
    DIRECTIVE("WSGIAcceptMutex", OXWSGI_D_ACCEPT_MUTEX, RSRC_CONF,
              "accept mutex of daemon processes"),
    DIRECTIVE("WSGISocketRotation", OXWSGI_D_SOCKET_ROTATION, RSRC_CONF,
              "On|Off: daemon socket names change on restart"),
    DIRECTIVE("WSGIIgnoreActivity", OXWSGI_D_IGNORE_ACTIVITY,
              OR_FILEINFO | ACCESS_CONF | RSRC_CONF,
              "On|Off: requests do not count as daemon activity"),
    DIRECTIVE("WSGIPassApacheRequest", OXWSGI_D_PASS_APACHE_REQUEST,
              ACCESS_CONF | RSRC_CONF, "Off only: no request_rec for applications"),
    DIRECTIVE("WSGIAccessScript", OXWSGI_D_ACCESS_SCRIPT,
              OR_AUTHCFG,
              "script whose allow_access(environ, host) decides access"),
    DIRECTIVE("WSGIAuthUserScript", OXWSGI_D_AUTH_USER_SCRIPT,
              OR_AUTHCFG,
              "script with check_password(environ, user, password) for "
              "AuthBasicProvider wsgi"),
    DIRECTIVE("WSGIAuthGroupScript", OXWSGI_D_AUTH_GROUP_SCRIPT,
              OR_AUTHCFG,
              "script with groups_for_user(environ, user) for Require wsgi-group"),
    DIRECTIVE("WSGIGroupAuthoritative", OXWSGI_D_GROUP_AUTHORITATIVE,
              OR_AUTHCFG,
              "On|Off: no effect with httpd 2.4's authorization providers"),
    DIRECTIVE("WSGIHandlerScript", OXWSGI_D_HANDLER_SCRIPT, ACCESS_CONF | RSRC_CONF,
              "name script [process-group=...] [application-group=...] "
              "[pass-authorization=...]: handler name whose requests run the "
              "script's handle_request"),
    DIRECTIVE("WSGIDispatchScript", OXWSGI_D_DISPATCH_SCRIPT, ACCESS_CONF | RSRC_CONF,
              "script whose process_group/application_group/callable_object(environ) "
              "choose per request"),
    DIRECTIVE("WSGIRestrictProcess", OXWSGI_D_RESTRICT_PROCESS, ACCESS_CONF | RSRC_CONF,
              "group ...: the only process groups WSGIProcessGroup may select here"),
    DIRECTIVE("WSGIServerMetrics", OXWSGI_D_SERVER_METRICS, RSRC_CONF,
              "On|Off: mod_wsgi.server_metrics() returns the scoreboard"),
    DIRECTIVE("WSGIVerboseDebugging", OXWSGI_D_VERBOSE_DEBUGGING, RSRC_CONF,
              "On|Off: extra debug logging (use LogLevel debug)"),
    UNSUPPORTED("WSGIPerInterpreterGIL"),
    UNSUPPORTED("WSGIFreeThreading"),
    UNSUPPORTED("WSGIUserAuthoritative"),
    UNSUPPORTED("WSGINewRelicConfigFile"),
    UNSUPPORTED("WSGINewRelicEnvironment"),
    UNSUPPORTED("WSGITelemetryService"),
    UNSUPPORTED("WSGITelemetryOptions"),
    UNSUPPORTED("WSGISlowRequests"),
    /* mod_python 3.5's directives (src/apache/modpython_conf.rs), its contexts. */
#define MODPYTHON(name, where, help) DIRECTIVE(name, OXWSGI_D_MODPYTHON, where, help)
    MODPYTHON("PythonHandler", OR_ALL, "module[::object] ... [| .ext ...]: content handlers"),
    MODPYTHON("PythonAuthenHandler", OR_ALL, "authentication handlers"),
    MODPYTHON("PythonAuthzHandler", OR_ALL, "authorization handlers"),
    MODPYTHON("PythonAccessHandler", OR_ALL, "access handlers"),
    MODPYTHON("PythonFixupHandler", OR_ALL, "fixup handlers"),
    MODPYTHON("PythonHeaderParserHandler", OR_ALL, "header parser handlers"),
    MODPYTHON("PythonTypeHandler", OR_ALL, "type checker handlers"),
    MODPYTHON("PythonTransHandler", RSRC_CONF, "URI translation handlers"),
    MODPYTHON("PythonPostReadRequestHandler", RSRC_CONF, "post-read-request handlers"),
    MODPYTHON("PythonInitHandler", OR_ALL,
              "post-read-request handlers (server) or header parser handlers (directory)"),
    MODPYTHON("PythonLogHandler", OR_ALL, "logging handlers"),
    MODPYTHON("PythonCleanupHandler", OR_ALL, "handlers run when the request ends"),
    MODPYTHON("PythonHandlerModule", OR_ALL, "module whose phase functions handle every phase"),
    MODPYTHON("PythonOption", OR_ALL, "key [value]: an option for req.get_options()"),
    MODPYTHON("PythonPath", OR_ALL, "a Python list expression that becomes sys.path"),
    MODPYTHON("PythonImport", RSRC_CONF, "module interpreter: imported when a child starts"),
    MODPYTHON("PythonInterpreter", OR_ALL, "name of the interpreter handlers run in"),
    MODPYTHON("PythonInterpPerDirectory", OR_ALL, "On|Off: one interpreter per directory"),
    MODPYTHON("PythonInterpPerDirective", OR_ALL,
              "On|Off: one interpreter per directive's directory"),
    MODPYTHON("PythonAutoReload", OR_ALL, "On|Off: re-import changed handler modules"),
    MODPYTHON("PythonDebug", OR_ALL, "On|Off: tracebacks to the client"),
    MODPYTHON("PythonEnablePdb", OR_ALL, "Off only"),
    MODPYTHON("PythonOptimize", RSRC_CONF, "On|Off (use WSGIPythonOptimize)"),
    MODPYTHON("PythonInputFilter", RSRC_CONF,
              "module[::function] NAME: an input filter for SetInputFilter NAME"),
    MODPYTHON("PythonOutputFilter", RSRC_CONF,
              "module[::function] NAME: an output filter for SetOutputFilter NAME"),
    MODPYTHON("PythonConnectionHandler", RSRC_CONF, "not supported yet"),
#undef MODPYTHON
    { NULL }
};


/* ---- per-directory configuration ---------------------------------------- */

void *
oxwsgi_create_dir_conf(apr_pool_t *p, char *dir)
{
    oxwsgi_dir_conf *c = apr_pcalloc(p, sizeof(*c));

    (void) dir;
    c->pass_authorization = -1;
    c->chunked_request = -1;
    c->script_reloading = -1;
    c->map_head_to_get = -1;
    c->enable_sendfile = -1;
    c->error_override = -1;
    c->ignore_activity = -1;
    return c;
}


void *
oxwsgi_merge_dir_conf(apr_pool_t *p, void *base_conf, void *add_conf)
{
    oxwsgi_dir_conf *base = base_conf, *add = add_conf;
    oxwsgi_dir_conf *c = apr_pcalloc(p, sizeof(*c));

    c->callable = add->callable ? add->callable : base->callable;
    c->application_group = add->application_group ? add->application_group
                                                  : base->application_group;
    c->process_group = add->process_group ? add->process_group
                                          : base->process_group;
#define MERGE_INT(f) c->f = add->f != -1 ? add->f : base->f
    MERGE_INT(pass_authorization);
    MERGE_INT(chunked_request);
    MERGE_INT(script_reloading);
    MERGE_INT(map_head_to_get);
    MERGE_INT(enable_sendfile);
    MERGE_INT(error_override);
    MERGE_INT(ignore_activity);
#undef MERGE_INT
    c->trusted_proxies = add->trusted_proxies ? add->trusted_proxies
                                              : base->trusted_proxies;
    c->dispatch_script = add->dispatch_script ? add->dispatch_script
                                              : base->dispatch_script;
    c->access_script = add->access_script ? add->access_script : base->access_script;
    c->auth_user_script = add->auth_user_script ? add->auth_user_script
                                                : base->auth_user_script;
    c->auth_group_script = add->auth_group_script ? add->auth_group_script
                                                  : base->auth_group_script;
    /* Inner definitions first: a look-up takes the first line with the name. */
    c->handler_scripts = add->handler_scripts && base->handler_scripts
                             ? apr_pstrcat(p, add->handler_scripts,
                                           base->handler_scripts, NULL)
                             : add->handler_scripts ? add->handler_scripts
                                                    : base->handler_scripts;
    c->restrict_process = add->restrict_process ? add->restrict_process
                                                : base->restrict_process;
    c->trusted_proxy_headers = add->trusted_proxy_headers
                                   ? add->trusted_proxy_headers
                                   : base->trusted_proxy_headers;
    c->modpython = add->modpython && base->modpython
                       ? oxwsgi_rs_mp_merge(p, base->modpython, add->modpython)
                       : add->modpython ? add->modpython : base->modpython;
    return c;
}


oxwsgi_dir_conf *
oxwsgi_ap_dir_conf(request_rec *r)
{
    return ap_get_module_config(r->per_dir_config, oxwsgi_self);
}


/* ---- hooks -------------------------------------------------------------- */

/* Whether `name` is a WSGIHandlerScript of the request's context. */
static int
oxwsgi_is_handler_script(request_rec *r, const char *name)
{
    const oxwsgi_dir_conf *dc = oxwsgi_ap_dir_conf(r);
    const char *line = dc != NULL ? dc->handler_scripts : NULL;
    size_t n = strlen(name);

    while (line != NULL && *line != '\0') {
        if (strncmp(line, name, n) == 0 && line[n] == '\t') {
            return 1;
        }
        line = strchr(line, '\n');
        line = line != NULL ? line + 1 : NULL;
    }
    return 0;
}


static int
oxwsgi_handler(request_rec *r)
{
    /* Cheap check in C first: most requests are not ours. */
    if (r->handler == NULL
        || (strcmp(r->handler, "wsgi-script") != 0
            && strcmp(r->handler, "application/x-httpd-wsgi") != 0
            && !oxwsgi_is_handler_script(r, r->handler))) {
        return DECLINED;
    }
    return oxwsgi_rs_handler(r);
}


/* ---- mod_python handlers ----------------------------------------------- */

/* A phase of a request whose context has mod_python directives: decided in Rust. */
static int
oxwsgi_mp_run(request_rec *r, int phase)
{
    const oxwsgi_dir_conf *dc = oxwsgi_ap_dir_conf(r);

    if (dc == NULL || dc->modpython == NULL) {
        return DECLINED;
    }
    return oxwsgi_rs_mp_phase(r, phase);
}

#define MP_HOOK(fn, phase) \
    static int fn(request_rec *r) { return oxwsgi_mp_run(r, phase); }
MP_HOOK(oxwsgi_mp_post_read_request, OXWSGI_MP_POST_READ_REQUEST)
MP_HOOK(oxwsgi_mp_trans, OXWSGI_MP_TRANS)
MP_HOOK(oxwsgi_mp_header_parser, OXWSGI_MP_HEADER_PARSER)
MP_HOOK(oxwsgi_mp_access, OXWSGI_MP_ACCESS)
MP_HOOK(oxwsgi_mp_authen, OXWSGI_MP_AUTHEN)
MP_HOOK(oxwsgi_mp_authz, OXWSGI_MP_AUTHZ)
MP_HOOK(oxwsgi_mp_type, OXWSGI_MP_TYPE)
MP_HOOK(oxwsgi_mp_fixup, OXWSGI_MP_FIXUP)
MP_HOOK(oxwsgi_mp_log, OXWSGI_MP_LOG)
#undef MP_HOOK

static int
oxwsgi_mp_handler(request_rec *r)
{
    if (r->handler == NULL
        || (strcmp(r->handler, "mod_python") != 0
            && strcmp(r->handler, "python-program") != 0)) {
        return DECLINED;
    }
    return oxwsgi_mp_run(r, OXWSGI_MP_HANDLER);
}

/* ---- mod_python output filters ----------------------------------------- */

static apr_status_t
oxwsgi_mp_output_filter(ap_filter_t *f, apr_bucket_brigade *bb)
{
    return oxwsgi_rs_mp_output_filter(f, bb);
}


void
oxwsgi_ap_register_mp_output_filter(const char *name)
{
    ap_register_output_filter(name, oxwsgi_mp_output_filter, NULL, AP_FTYPE_RESOURCE);
}


int
oxwsgi_ap_filter_flatten(ap_filter_t *f, apr_bucket_brigade *bb, char **data,
                         apr_size_t *len, int *eos)
{
    apr_bucket *e;
    apr_status_t rv;

    *eos = 0;
    for (e = APR_BRIGADE_FIRST(bb); e != APR_BRIGADE_SENTINEL(bb); e = APR_BUCKET_NEXT(e)) {
        if (APR_BUCKET_IS_EOS(e)) {
            *eos = 1;
        }
    }
    rv = apr_brigade_pflatten(bb, data, len, f->r->pool);
    apr_brigade_cleanup(bb);
    return rv == APR_SUCCESS ? 0 : -1;
}


int
oxwsgi_ap_filter_pass(ap_filter_t *f, const char *data, apr_size_t len, int flags)
{
    apr_bucket_alloc_t *ba = f->c->bucket_alloc;
    apr_bucket_brigade *bb = apr_brigade_create(f->r->pool, ba);
    apr_status_t rv;

    if (len > 0) {
        APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_heap_create(data, len, NULL, ba));
    }
    if (flags & OXWSGI_W_EOS) {
        APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_eos_create(ba));
    } else if (flags & OXWSGI_W_FLUSH) {
        APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_flush_create(ba));
    }
    rv = ap_pass_brigade(f->next, bb);
    apr_brigade_destroy(bb);
    return rv == APR_SUCCESS ? 0 : -1;
}


int
oxwsgi_ap_filter_pass_brigade(ap_filter_t *f, apr_bucket_brigade *bb)
{
    return ap_pass_brigade(f->next, bb) == APR_SUCCESS ? 0 : -1;
}


static apr_status_t
oxwsgi_mp_input_filter(ap_filter_t *f, apr_bucket_brigade *bb, ap_input_mode_t mode,
                       apr_read_type_e block, apr_off_t readbytes)
{
    return oxwsgi_rs_mp_input_filter(f, bb, (int) mode, (int) block, readbytes);
}


void
oxwsgi_ap_register_mp_input_filter(const char *name)
{
    ap_register_input_filter(name, oxwsgi_mp_input_filter, NULL, AP_FTYPE_RESOURCE);
}


int
oxwsgi_ap_filter_get(ap_filter_t *f, int mode, int block, apr_off_t readbytes,
                     char **data, apr_size_t *len, int *eos)
{
    apr_bucket_brigade *tmp = apr_brigade_create(f->r->pool, f->c->bucket_alloc);
    apr_bucket *e;
    apr_status_t rv;

    *eos = 0;
    *len = 0;
    rv = ap_get_brigade(f->next, tmp, (ap_input_mode_t) mode, (apr_read_type_e) block,
                        readbytes);
    if (rv == APR_SUCCESS) {
        for (e = APR_BRIGADE_FIRST(tmp); e != APR_BRIGADE_SENTINEL(tmp);
             e = APR_BUCKET_NEXT(e)) {
            if (APR_BUCKET_IS_EOS(e)) {
                *eos = 1;
            }
        }
        rv = apr_brigade_pflatten(tmp, data, len, f->r->pool);
    }
    apr_brigade_destroy(tmp);
    return rv == APR_SUCCESS ? 0 : -1;
}


void
oxwsgi_ap_filter_append(ap_filter_t *f, apr_bucket_brigade *bb, const char *data,
                        apr_size_t len, int eos)
{
    apr_bucket_alloc_t *ba = f->c->bucket_alloc;

    if (len > 0) {
        APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_heap_create(data, len, NULL, ba));
    }
    if (eos) {
        APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_eos_create(ba));
    }
}


int
oxwsgi_ap_filter_get_brigade(ap_filter_t *f, apr_bucket_brigade *bb, int mode, int block,
                             apr_off_t readbytes)
{
    return ap_get_brigade(f->next, bb, (ap_input_mode_t) mode, (apr_read_type_e) block,
                          readbytes) == APR_SUCCESS ? 0 : -1;
}


request_rec *
oxwsgi_ap_filter_request(ap_filter_t *f)
{
    return f->r;
}


const char *
oxwsgi_ap_filter_name(ap_filter_t *f)
{
    return f->frec != NULL ? f->frec->name : NULL;
}


static void
oxwsgi_mp_register_hooks(void)
{
    /* As mod_python 3.5: every phase at APR_HOOK_MIDDLE. */
    ap_hook_post_read_request(oxwsgi_mp_post_read_request, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_translate_name(oxwsgi_mp_trans, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_header_parser(oxwsgi_mp_header_parser, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_access_checker(oxwsgi_mp_access, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_check_authn(oxwsgi_mp_authen, NULL, NULL, APR_HOOK_MIDDLE,
                        AP_AUTH_INTERNAL_PER_CONF);
    ap_hook_check_authz(oxwsgi_mp_authz, NULL, NULL, APR_HOOK_MIDDLE,
                        AP_AUTH_INTERNAL_PER_CONF);
    ap_hook_type_checker(oxwsgi_mp_type, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_fixups(oxwsgi_mp_fixup, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_handler(oxwsgi_mp_handler, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_log_transaction(oxwsgi_mp_log, NULL, NULL, APR_HOOK_MIDDLE);
}


/* ---- access and authentication scripts ---------------------------------- */

static int
oxwsgi_access_checker(request_rec *r)
{
    const oxwsgi_dir_conf *dc = oxwsgi_ap_dir_conf(r);
    const char *host;

    if (dc == NULL || dc->access_script == NULL) {
        return DECLINED;
    }
    host = ap_get_remote_host(r->connection, r->per_dir_config, REMOTE_HOST, NULL);
    if (host == NULL) {
        host = r->useragent_ip;
    }
    switch (oxwsgi_rs_allow_access(r, host)) {
    case OXWSGI_AUTH_GRANTED:
        return OK;
    case OXWSGI_AUTH_DECLINED:
        return DECLINED;
    default:
        /* Denied, or the script failed: fail closed. */
        if (ap_satisfies(r) != SATISFY_ANY || !ap_some_auth_required(r)) {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                          "oxwsgi: client denied by WSGIAccessScript: %s", r->filename);
        }
        return HTTP_FORBIDDEN;
    }
}


static authn_status
oxwsgi_authn_status(int rc)
{
    switch (rc) {
    case OXWSGI_AUTH_GRANTED:
        return AUTH_GRANTED;
    case OXWSGI_AUTH_DENIED:
        return AUTH_DENIED;
    case OXWSGI_AUTH_USER_NOT_FOUND:
        return AUTH_USER_NOT_FOUND;
    default:
        return AUTH_GENERAL_ERROR;
    }
}


static authn_status
oxwsgi_check_password(request_rec *r, const char *user, const char *password)
{
    return oxwsgi_authn_status(oxwsgi_rs_check_password(r, user, password));
}


static authn_status
oxwsgi_get_realm_hash(request_rec *r, const char *user, const char *realm,
                      char **rethash)
{
    int rc = oxwsgi_rs_get_realm_hash(r, user, realm, rethash);

    /* For digest, a found user is AUTH_USER_FOUND with the hash set. */
    return rc == OXWSGI_AUTH_GRANTED ? AUTH_USER_FOUND : oxwsgi_authn_status(rc);
}


static const authn_provider oxwsgi_authn_provider = {
    &oxwsgi_check_password,
    &oxwsgi_get_realm_hash,
};


/* Require wsgi-group name...: the user is in one of the groups its script lists. */
static authz_status
oxwsgi_check_authorization(request_rec *r, const char *require_args,
                           const void *parsed_require_line)
{
    (void) parsed_require_line;
    if (r->user == NULL) {
        return AUTHZ_DENIED_NO_USER;
    }
    /* Anything but a match (no script, an error) denies. */
    return oxwsgi_rs_user_in_groups(r, r->user, require_args) == OXWSGI_AUTH_GRANTED
               ? AUTHZ_GRANTED
               : AUTHZ_DENIED;
}


static const authz_provider oxwsgi_authz_provider = {
    &oxwsgi_check_authorization,
    NULL,
};


/* ---- being mod_wsgi for <IfModule> ------------------------------------- */

/*
 * `<IfModule wsgi_module>` holds when a loaded module has that symbol name
 * (LoadModule wsgi_module ...) or a linked module has that `name`. Loaded as
 * oxwsgi_module, we add this empty record (no directives, hooks or configs) to
 * httpd's module list, so that sections written for mod_wsgi are read and an
 * `<IfModule !wsgi_module> LoadModule wsgi_module mod_wsgi.so` guard does not
 * load mod_wsgi beside us. It is removed with the configuration pool, before
 * this file is unloaded.
 */
static module oxwsgi_wsgi_marker = {
    .version = MODULE_MAGIC_NUMBER_MAJOR,
    .minor_version = MODULE_MAGIC_NUMBER_MINOR,
    .module_index = -1,
    .name = "wsgi_module",
    .magic = MODULE_MAGIC_COOKIE,
};


static apr_status_t
oxwsgi_forget_self(void *data)
{
    (void) data;
    if (oxwsgi_wsgi_marker.module_index != -1) {
        ap_remove_module(&oxwsgi_wsgi_marker);
    }
    /* ap_remove_module leaves `next` set unless the record was first. */
    oxwsgi_wsgi_marker.next = NULL;
    oxwsgi_self = NULL;
    oxwsgi_loaded_twice = 0;
    return APR_SUCCESS;
}


static int
oxwsgi_is_ours(const module *m)
{
    return m == &oxwsgi_module || m == &wsgi_module || m == &oxwsgi_wsgi_marker;
}


const char *
oxwsgi_ap_load_problem(void)
{
    const module *m;

    if (oxwsgi_loaded_twice) {
        return "mod_oxwsgi.so is loaded twice (as oxwsgi_module and as wsgi_module); "
               "keep one LoadModule line";
    }
    for (m = ap_top_module; m != NULL; m = m->next) {
        if (!oxwsgi_is_ours(m) && m->name != NULL
            && (strcmp(m->name, "mod_wsgi.c") == 0
                || strcmp(m->name, "wsgi_module") == 0)) {
            return "mod_wsgi is loaded as well as mod_oxwsgi; both serve the same "
                   "directives: remove mod_wsgi's LoadModule line (a2dismod wsgi)";
        }
        if (!oxwsgi_is_ours(m) && m->name != NULL && strcmp(m->name, "mod_python.c") == 0) {
            return "mod_python is loaded as well as mod_oxwsgi; oxwsgi runs mod_python "
                   "handlers itself and both embed Python: remove mod_python's "
                   "LoadModule line (a2dismod python)";
        }
    }
    return NULL;
}


void
oxwsgi_register_hooks(apr_pool_t *p)
{
    /*
     * Run after mod_alias, as mod_wsgi does: `Alias /static ...` next to
     * `WSGIScriptAlias / app.wsgi` lets httpd serve the static files itself.
     */
    static const char *const after_alias[] = { "mod_alias.c", NULL };

    if (oxwsgi_self != NULL) {
        /* The other record of this file is being loaded too: refused at check_config. */
        oxwsgi_loaded_twice = 1;
        return;
    }
    oxwsgi_self = wsgi_module.module_index != -1 ? &wsgi_module : &oxwsgi_module;
    apr_pool_cleanup_register(p, NULL, oxwsgi_forget_self, apr_pool_cleanup_null);
    if (oxwsgi_self == &oxwsgi_module && ap_find_linked_module("wsgi_module") == NULL) {
        /* Only fails at DYNAMIC_MODULE_LIMIT; the cleanup removes it either way. */
        (void) ap_add_module(&oxwsgi_wsgi_marker, p, "wsgi_module");
    }
    ap_hook_pre_config(oxwsgi_rs_pre_config, NULL, NULL, APR_HOOK_MIDDLE);
    /* check_config runs for `apache2 -t` too; post_config does not. */
    ap_hook_check_config(oxwsgi_rs_check_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_post_config(oxwsgi_rs_post_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_child_init(oxwsgi_rs_child_init, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_translate_name(oxwsgi_rs_translate_name, after_alias, NULL,
                           APR_HOOK_MIDDLE);
    ap_hook_handler(oxwsgi_handler, NULL, NULL, APR_HOOK_MIDDLE);
    /* As mod_wsgi: after mod_ssl, before mod_authz_host. */
    {
        static const char *const before_access[] = { "mod_ssl.c", NULL };
        static const char *const after_access[] = { "mod_authz_host.c", NULL };

        ap_hook_access_checker(oxwsgi_access_checker, before_access, after_access,
                               APR_HOOK_MIDDLE);
    }
    oxwsgi_mp_register_hooks();
    /* AuthBasicProvider wsgi / AuthDigestProvider wsgi (WSGIAuthUserScript). */
    ap_register_provider(p, AUTHN_PROVIDER_GROUP, "wsgi", AUTHN_PROVIDER_VERSION,
                         &oxwsgi_authn_provider);
    /* Require wsgi-group (WSGIAuthGroupScript). */
    ap_register_provider(p, AUTHZ_PROVIDER_GROUP, "wsgi-group", AUTHZ_PROVIDER_VERSION,
                         &oxwsgi_authz_provider);
}


/* ---- output ------------------------------------------------------------- */

apr_bucket_brigade *
oxwsgi_ap_brigade(request_rec *r)
{
    return apr_brigade_create(r->pool, r->connection->bucket_alloc);
}


static int
oxwsgi_pass(request_rec *r, apr_bucket_brigade *bb, int flags)
{
    apr_bucket_alloc_t *ba = r->connection->bucket_alloc;
    apr_status_t rv;

    if (flags & OXWSGI_W_EOS) {
        APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_eos_create(ba));
    } else if (flags & OXWSGI_W_FLUSH) {
        APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_flush_create(ba));
    }
    rv = ap_pass_brigade(r->output_filters, bb);
    /* cleanup, not destroy: the brigade is reused for the whole response. */
    apr_brigade_cleanup(bb);
    if (rv != APR_SUCCESS || r->connection->aborted) {
        return -1;
    }
    return 0;
}


int
oxwsgi_ap_write(request_rec *r, apr_bucket_brigade *bb, const char *data,
                apr_size_t len, int flags)
{
    if (r->connection->aborted) {
        return -1;
    }
    if (len > 0) {
        /* Transient: no copy unless a filter has to set the data aside. */
        APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_transient_create(
                                        data, len, r->connection->bucket_alloc));
    }
    return oxwsgi_pass(r, bb, flags);
}


static apr_status_t
oxwsgi_close_fd(void *data)
{
    close((int) (long) data);
    return APR_SUCCESS;
}


int
oxwsgi_ap_send_file(request_rec *r, apr_bucket_brigade *bb, int fd,
                    apr_off_t offset, apr_off_t len, int flags)
{
    apr_file_t *file = NULL;
    int own_fd;

    if (r->connection->aborted) {
        return -1;
    }
    /*
     * The bucket may outlive the handler (event MPM write completion), but the
     * application closes its file object when the response ends. Send from a
     * duplicate that the request pool closes.
     */
    own_fd = dup(fd);
    if (own_fd < 0) {
        return -2;
    }
    apr_pool_cleanup_register(r->pool, (void *) (long) own_fd, oxwsgi_close_fd,
                              apr_pool_cleanup_null);
    if (apr_os_file_put(&file, &own_fd,
                        (flags & OXWSGI_W_NO_SENDFILE)
                            ? APR_FOPEN_READ
                            : APR_FOPEN_READ | APR_FOPEN_SENDFILE_ENABLED,
                        r->pool) != APR_SUCCESS) {
        return -2;
    }
    /* apr_brigade_insert_file splits files larger than a bucket can hold. */
    apr_brigade_insert_file(bb, file, offset, len, r->pool);
    return oxwsgi_pass(r, bb, flags);
}


int
oxwsgi_ap_abort(request_rec *r, apr_bucket_brigade *bb)
{
    /*
     * The response is already under way and cannot become a 500. An error
     * bucket with 502 makes the chunk filter omit the final chunk and the
     * connection close (what mod_proxy does for a broken backend), so the
     * client sees a truncated response instead of a complete one.
     */
    apr_bucket_alloc_t *ba = r->connection->bucket_alloc;

    r->connection->keepalive = AP_CONN_CLOSE;
    apr_brigade_cleanup(bb);
    APR_BRIGADE_INSERT_TAIL(bb, ap_bucket_error_create(HTTP_BAD_GATEWAY, NULL,
                                                       r->pool, ba));
    APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_eos_create(ba));
    ap_pass_brigade(r->output_filters, bb);
    apr_brigade_cleanup(bb);
    return 0;
}


/* ---- input -------------------------------------------------------------- */

int
oxwsgi_ap_read(request_rec *r, apr_bucket_brigade *bb, char *buf,
               apr_size_t len, apr_size_t *got)
{
    apr_status_t rv;
    int eos;

    *got = 0;
    rv = ap_get_brigade(r->input_filters, bb, AP_MODE_READBYTES,
                        APR_BLOCK_READ, len);
    if (rv != APR_SUCCESS) {
        apr_brigade_cleanup(bb);
        return OXWSGI_READ_ERROR;
    }
    eos = !APR_BRIGADE_EMPTY(bb) && APR_BUCKET_IS_EOS(APR_BRIGADE_LAST(bb));
    rv = apr_brigade_flatten(bb, buf, &len);
    apr_brigade_cleanup(bb);
    if (rv != APR_SUCCESS) {
        return OXWSGI_READ_ERROR;
    }
    *got = len;
    return eos ? OXWSGI_READ_EOS : OXWSGI_READ_OK;
}


/* ---- logging and queries ------------------------------------------------ */

void
oxwsgi_ap_log_request(const request_rec *r, int level, const char *msg)
{
    ap_log_rerror(APLOG_MARK, level, 0, r, "%s", msg);
}


void
oxwsgi_ap_log_server(const server_rec *s, int level, const char *msg)
{
    ap_log_error(APLOG_MARK, level, 0, s, "%s", msg);
}


int
oxwsgi_ap_mpm_threaded(void)
{
    int threaded = 0;

    if (ap_mpm_query(AP_MPMQ_IS_THREADED, &threaded) != APR_SUCCESS) {
        return 0;
    }
    return threaded != AP_MPMQ_NOT_SUPPORTED;
}


int
oxwsgi_ap_mpm_query(int code)
{
    int v = -1;

    if (ap_mpm_query(code, &v) != APR_SUCCESS) {
        return -1;
    }
    return v;
}


int
oxwsgi_ap_exec_cgi_allowed(request_rec *r)
{
    return (ap_allow_options(r) & OPT_EXECCGI) != 0;
}


int
oxwsgi_ap_path_info_rejected(request_rec *r)
{
    return r->used_path_info == AP_REQ_REJECT_PATH_INFO && r->path_info != NULL
           && r->path_info[0] != '\0';
}


int
oxwsgi_ap_has_content_filter(request_rec *r)
{
    return r->output_filters != NULL && r->output_filters->frec != NULL
           && r->output_filters->frec->ftype < AP_FTYPE_PROTOCOL;
}


/* ---- scoreboard --------------------------------------------------------- */

int
oxwsgi_ap_sb_global(oxwsgi_sb_global *out)
{
    global_score *g;

    if (!ap_exists_scoreboard_image() || (g = ap_get_scoreboard_global()) == NULL) {
        return 0;
    }
    out->server_limit = g->server_limit;
    out->thread_limit = g->thread_limit;
    out->running_generation = g->running_generation;
    out->restart_time = g->restart_time;
    return 1;
}


void
oxwsgi_ap_sb_process(int i, oxwsgi_sb_process *out)
{
    process_score *p = ap_get_scoreboard_process(i);

    out->pid = p->pid;
    out->generation = p->generation;
    out->quiescing = p->quiescing;
}


void
oxwsgi_ap_sb_worker(int i, int j, oxwsgi_sb_worker *out)
{
    worker_score *w = ap_get_scoreboard_worker_from_indexes(i, j);

    out->thread_num = w->thread_num;
    out->generation = w->generation;
    out->status = w->status;
    out->access_count = (apr_int64_t) w->access_count;
    out->bytes_served = (apr_int64_t) w->bytes_served;
    out->start_time = w->start_time;
    out->stop_time = w->stop_time;
    out->last_used = w->last_used;
    apr_cpystrn(out->client, w->client64[0] ? w->client64 : w->client, sizeof(out->client));
    apr_cpystrn(out->request, w->request, sizeof(out->request));
    apr_cpystrn(out->vhost, w->vhost, sizeof(out->vhost));
}


int
oxwsgi_ap_is_pre_config_pass(void)
{
    return ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_CREATE_PRE_CONFIG;
}
