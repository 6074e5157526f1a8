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
} oxwsgi_dir_conf;

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
    OXWSGI_D_UNSUPPORTED
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
int oxwsgi_ap_is_pre_config_pass(void);

#endif
