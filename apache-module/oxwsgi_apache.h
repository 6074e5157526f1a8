/*
 * oxwsgi_apache.h -- what the C shim and the Rust adapter share.
 *
 * bindgen reads this file (through wrapper.h), so the Rust side sees the same
 * struct layouts and directive ids as the shim. Everything here is plain data:
 * policy (what a directive means, how a request is served) lives in Rust, in
 * src/apache/.
 */
#ifndef OXWSGI_APACHE_H
#define OXWSGI_APACHE_H

#include "httpd.h"
#include "http_config.h"
#include "apr_buckets.h"

/* Per-directory settings (<Directory>, <Location>, .htaccess, server).
 * -1 / NULL means "not set here"; merging lets the innermost setting win. */
typedef struct {
    const char *callable;            /* WSGICallableObject */
    const char *application_group;   /* WSGIApplicationGroup */
    int         pass_authorization;  /* WSGIPassAuthorization */
    int         chunked_request;     /* WSGIChunkedRequest */
    int         script_reloading;    /* WSGIScriptReloading */
    const char *process_group;       /* WSGIProcessGroup */
    /* mod_wsgi compatibility (src/apache/compat.rs) */
    int         map_head_to_get;     /* WSGIMapHEADToGET: 0 Off, 1 On, 2 Auto */
    int         enable_sendfile;     /* WSGIEnableSendfile */
    int         error_override;      /* WSGIErrorOverride (daemon mode only) */
    int         ignore_activity;     /* WSGIIgnoreActivity (daemon mode only) */
    const char *trusted_proxies;     /* WSGITrustedProxies, space-separated */
    const char *trusted_proxy_headers; /* WSGITrustedProxyHeaders, space-separated */
    const char *dispatch_script;     /* WSGIDispatchScript */
    /* WSGIHandlerScript: "name\tindex\n" lines, innermost context first; the index is
     * into the handler scripts of src/apache/config.rs. */
    const char *handler_scripts;
    const char *access_script;       /* WSGIAccessScript */
    const char *auth_user_script;    /* WSGIAuthUserScript */
    const char *auth_group_script;   /* WSGIAuthGroupScript */
    /* WSGIRestrictProcess: the groups a request here may select, each followed by '\n'
     * (%{GLOBAL} is an empty line); NULL: no restriction. */
    const char *restrict_process;
    /* mod_python's directives of this context, parsed and merged in Rust
     * (src/apache/modpython_conf.rs); NULL when the context has none. */
    const void *modpython;
} oxwsgi_dir_conf;

/* What the auth scripts decided (src/apache/auth.rs); the shim maps them to httpd's. */
enum oxwsgi_auth {
    OXWSGI_AUTH_DENIED = 0,
    OXWSGI_AUTH_GRANTED = 1,
    OXWSGI_AUTH_USER_NOT_FOUND = 2,
    OXWSGI_AUTH_ERROR = 3,
    OXWSGI_AUTH_DECLINED = 4
};

/* Directive ids, passed to Rust through cmd->info. */
enum oxwsgi_directive {
    OXWSGI_D_SCRIPT_ALIAS = 1,
    OXWSGI_D_SCRIPT_ALIAS_MATCH,
    OXWSGI_D_PYTHON_HOME,
    OXWSGI_D_PYTHON_PATH,
    OXWSGI_D_CALLABLE_OBJECT,
    OXWSGI_D_IMPORT_SCRIPT,
    OXWSGI_D_PASS_AUTHORIZATION,
    OXWSGI_D_CHUNKED_REQUEST,
    OXWSGI_D_APPLICATION_GROUP,
    OXWSGI_D_SCRIPT_RELOADING,
    OXWSGI_D_PROCESS_GROUP,
    OXWSGI_D_RESTRICT_EMBEDDED,
    OXWSGI_D_LAZY_INITIALIZATION,
    OXWSGI_D_PYTHON_OPTIMIZE,
    OXWSGI_D_PYTHON_HASH_SEED,
    OXWSGI_D_DONT_WRITE_BYTECODE,
    OXWSGI_D_PYTHON_WARNINGS,
    OXWSGI_D_SWITCH_INTERVAL,
    OXWSGI_D_DAEMON_PROCESS,
    OXWSGI_D_SOCKET_PREFIX,
    OXWSGI_D_UNSUPPORTED,
    /* mod_wsgi compatibility (src/apache/compat.rs) */
    OXWSGI_D_RESTRICT_STDIN,
    OXWSGI_D_RESTRICT_STDOUT,
    OXWSGI_D_RESTRICT_SIGNAL,
    OXWSGI_D_PYTHON_EGGS,
    OXWSGI_D_TRUSTED_PROXIES,
    OXWSGI_D_TRUSTED_PROXY_HEADERS,
    OXWSGI_D_MAP_HEAD_TO_GET,
    OXWSGI_D_ENABLE_SENDFILE,
    OXWSGI_D_ERROR_OVERRIDE,
    OXWSGI_D_CASE_SENSITIVITY,
    OXWSGI_D_DESTROY_INTERPRETER,
    OXWSGI_D_ACCEPT_MUTEX,
    OXWSGI_D_SOCKET_ROTATION,
    OXWSGI_D_IGNORE_ACTIVITY,
    OXWSGI_D_PASS_APACHE_REQUEST,
    OXWSGI_D_VERBOSE_DEBUGGING,
    OXWSGI_D_SERVER_METRICS,
    OXWSGI_D_DISPATCH_SCRIPT,
    OXWSGI_D_HANDLER_SCRIPT,
    OXWSGI_D_ACCESS_SCRIPT,
    OXWSGI_D_AUTH_USER_SCRIPT,
    OXWSGI_D_AUTH_GROUP_SCRIPT,
    OXWSGI_D_GROUP_AUTHORITATIVE,
    OXWSGI_D_RESTRICT_PROCESS,
    /* Every mod_python directive (src/apache/modpython_conf.rs tells them apart by name). */
    OXWSGI_D_MODPYTHON
};

/* The request phases a mod_python handler can run in (src/apache/modpython.rs). */
enum oxwsgi_mp_phase {
    OXWSGI_MP_POST_READ_REQUEST = 0,
    OXWSGI_MP_TRANS,
    OXWSGI_MP_HEADER_PARSER,
    OXWSGI_MP_ACCESS,
    OXWSGI_MP_AUTHEN,
    OXWSGI_MP_AUTHZ,
    OXWSGI_MP_TYPE,
    OXWSGI_MP_FIXUP,
    OXWSGI_MP_HANDLER,
    OXWSGI_MP_LOG
};

/* Outcome of a body read (oxwsgi_ap_read). */
enum oxwsgi_read_status {
    OXWSGI_READ_OK = 0,     /* *got bytes copied, may be 0 only at EOS */
    OXWSGI_READ_EOS = 1,    /* end of the request body, *got may be > 0 */
    OXWSGI_READ_ERROR = 2   /* client gone, timeout, bad chunk framing... */
};

/* Flags for oxwsgi_ap_write / oxwsgi_ap_send_file. */
#define OXWSGI_W_FLUSH 1    /* push to the client now (streamed responses) */
#define OXWSGI_W_EOS   2    /* this is the end of the response */
#define OXWSGI_W_NO_SENDFILE 4 /* send_file: no sendfile() (WSGIEnableSendfile Off) */

/* The scoreboard, copied out of shared memory (mod_wsgi.server_metrics()). */
typedef struct {
    int server_limit;
    int thread_limit;
    int running_generation;
    apr_int64_t restart_time;       /* microseconds since the epoch */
} oxwsgi_sb_global;

typedef struct {
    int pid;
    int generation;
    int quiescing;
} oxwsgi_sb_process;

typedef struct {
    int thread_num;
    int generation;
    int status;                     /* SERVER_DEAD, SERVER_READY, ... */
    apr_int64_t access_count;
    apr_int64_t bytes_served;
    apr_int64_t start_time;
    apr_int64_t stop_time;
    apr_int64_t last_used;
    char client[64];
    char request[64];
    char vhost[32];
} oxwsgi_sb_worker;

/* Shim functions called from Rust (the work only C macros can express). */
oxwsgi_dir_conf *oxwsgi_ap_dir_conf(request_rec *r);
apr_bucket_brigade *oxwsgi_ap_brigade(request_rec *r);
int oxwsgi_ap_write(request_rec *r, apr_bucket_brigade *bb, const char *data,
                    apr_size_t len, int flags);
int oxwsgi_ap_send_file(request_rec *r, apr_bucket_brigade *bb, int fd,
                        apr_off_t offset, apr_off_t len, int flags);
int oxwsgi_ap_abort(request_rec *r, apr_bucket_brigade *bb);
int oxwsgi_ap_read(request_rec *r, apr_bucket_brigade *bb, char *buf,
                   apr_size_t len, apr_size_t *got);
void oxwsgi_ap_log_request(const request_rec *r, int level, const char *msg);
void oxwsgi_ap_log_server(const server_rec *s, int level, const char *msg);
int oxwsgi_ap_mpm_threaded(void);
/* AP_MPMQ_* query (ap_mpm_query), -1 when the MPM does not answer. */
int oxwsgi_ap_mpm_query(int code);
/* Options ExecCGI is on for the request's directory. */
int oxwsgi_ap_exec_cgi_allowed(request_rec *r);
/* AcceptPathInfo Off and the request has extra path. */
int oxwsgi_ap_path_info_rejected(request_rec *r);
/* The first output filter is a content/resource filter (mod_deflate & co.). */
int oxwsgi_ap_has_content_filter(request_rec *r);
int oxwsgi_ap_is_pre_config_pass(void);
/* mod_python output filters (src/apache/modpython_filter.rs). */
void oxwsgi_ap_register_mp_output_filter(const char *name);
int oxwsgi_ap_filter_flatten(ap_filter_t *f, apr_bucket_brigade *bb, char **data,
                             apr_size_t *len, int *eos);
int oxwsgi_ap_filter_pass(ap_filter_t *f, const char *data, apr_size_t len, int flags);
int oxwsgi_ap_filter_pass_brigade(ap_filter_t *f, apr_bucket_brigade *bb);
request_rec *oxwsgi_ap_filter_request(ap_filter_t *f);
const char *oxwsgi_ap_filter_name(ap_filter_t *f);
void oxwsgi_ap_register_mp_input_filter(const char *name);
/* Input filters: read from the filter before (mode/block/readbytes as called), append
 * to the caller's brigade, or let a call through. */
int oxwsgi_ap_filter_get(ap_filter_t *f, int mode, int block, apr_off_t readbytes,
                         char **data, apr_size_t *len, int *eos);
void oxwsgi_ap_filter_append(ap_filter_t *f, apr_bucket_brigade *bb, const char *data,
                             apr_size_t len, int eos);
int oxwsgi_ap_filter_get_brigade(ap_filter_t *f, apr_bucket_brigade *bb, int mode,
                                 int block, apr_off_t readbytes);
/* Why this module cannot run as loaded (twice, or beside mod_wsgi), or NULL. */
const char *oxwsgi_ap_load_problem(void);
/* 0 when there is no scoreboard; process/worker indexes must be below the limits. */
int oxwsgi_ap_sb_global(oxwsgi_sb_global *out);
void oxwsgi_ap_sb_process(int i, oxwsgi_sb_process *out);
void oxwsgi_ap_sb_worker(int i, int j, oxwsgi_sb_worker *out);

#endif
