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

#include <unistd.h>

#include "oxwsgi_apache.h"

extern module AP_MODULE_DECLARE_DATA oxwsgi_module;
APLOG_USE_MODULE(oxwsgi);

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
    UNSUPPORTED("WSGIHandlerScript"),
    UNSUPPORTED("WSGIDispatchScript"),
    UNSUPPORTED("WSGICaseSensitivity"),
    UNSUPPORTED("WSGISocketRotation"),
    UNSUPPORTED("WSGIAcceptMutex"),
    UNSUPPORTED("WSGIDestroyInterpreter"),
    UNSUPPORTED("WSGIRestrictProcess"),
    UNSUPPORTED("WSGIIgnoreActivity"),
    UNSUPPORTED("WSGIServerMetrics"),
    UNSUPPORTED("WSGIPythonEggs"),
    UNSUPPORTED("WSGIPerInterpreterGIL"),
    UNSUPPORTED("WSGIFreeThreading"),
    UNSUPPORTED("WSGIAuthUserScript"),
    UNSUPPORTED("WSGIAuthGroupScript"),
    UNSUPPORTED("WSGIAccessScript"),
    UNSUPPORTED("WSGIMapHEADToGET"),
    UNSUPPORTED("WSGIErrorOverride"),
    UNSUPPORTED("WSGIEnableSendfile"),
    UNSUPPORTED("WSGIPassApacheRequest"),
    UNSUPPORTED("WSGITrustedProxies"),
    UNSUPPORTED("WSGITrustedProxyHeaders"),
    UNSUPPORTED("WSGITelemetryService"),
    UNSUPPORTED("WSGITelemetryOptions"),
    UNSUPPORTED("WSGISlowRequests"),
    UNSUPPORTED("WSGIRestrictSignal"),
    UNSUPPORTED("WSGIRestrictStdin"),
    UNSUPPORTED("WSGIRestrictStdout"),
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
#undef MERGE_INT
    return c;
}


oxwsgi_dir_conf *
oxwsgi_ap_dir_conf(request_rec *r)
{
    return ap_get_module_config(r->per_dir_config, &oxwsgi_module);
}


/* ---- hooks -------------------------------------------------------------- */

static int
oxwsgi_handler(request_rec *r)
{
    /* Cheap check in C first: most requests are not ours. */
    if (r->handler == NULL
        || (strcmp(r->handler, "wsgi-script") != 0
            && strcmp(r->handler, "application/x-httpd-wsgi") != 0)) {
        return DECLINED;
    }
    return oxwsgi_rs_handler(r);
}


void
oxwsgi_register_hooks(apr_pool_t *p)
{
    /*
     * Run after mod_alias, as mod_wsgi does: `Alias /static ...` next to
     * `WSGIScriptAlias / app.wsgi` lets httpd serve the static files itself.
     */
    static const char *const after_alias[] = { "mod_alias.c", NULL };

    (void) p;
    ap_hook_pre_config(oxwsgi_rs_pre_config, NULL, NULL, APR_HOOK_MIDDLE);
    /* check_config runs for `apache2 -t` too; post_config does not. */
    ap_hook_check_config(oxwsgi_rs_check_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_post_config(oxwsgi_rs_post_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_child_init(oxwsgi_rs_child_init, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_translate_name(oxwsgi_rs_translate_name, after_alias, NULL,
                           APR_HOOK_MIDDLE);
    ap_hook_handler(oxwsgi_handler, NULL, NULL, APR_HOOK_MIDDLE);
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
    if (apr_os_file_put(&file, &own_fd, APR_FOPEN_READ | APR_FOPEN_SENDFILE_ENABLED,
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
oxwsgi_ap_is_pre_config_pass(void)
{
    return ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_CREATE_PRE_CONFIG;
}
