
/* oxwsgi for nginx: the structures and C helpers the Rust adapter (src/nginx/) uses. */


#ifndef _NGX_HTTP_OXWSGI_MODULE_H_INCLUDED_
#define _NGX_HTTP_OXWSGI_MODULE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <ngx_thread_pool.h>


typedef struct {
    ngx_str_t                    key;
    ngx_http_complex_value_t     value;
    ngx_uint_t                   skip_empty;
} ngx_http_oxwsgi_param_t;


typedef struct {
    ngx_str_t                    python_home;
    ngx_array_t                 *python_path;      /* of ngx_str_t */
    ngx_array_t                 *imports;          /* of ngx_str_t */
    ngx_flag_t                   enabled;          /* a wsgi_app runs embedded */
    void                        *daemons;          /* Rust: daemon_conf.rs */
} ngx_http_oxwsgi_main_conf_t;


typedef struct {
    ngx_str_t                    script;
    ngx_str_t                    callable;
    /* the location prefix, or no_prefix for regex/named/if locations */
    ngx_str_t                    prefix;
    ngx_uint_t                   no_prefix;
    ngx_str_t                    thread_pool_name;
    ngx_thread_pool_t           *thread_pool;
    ngx_array_t                 *params;           /* of ngx_http_oxwsgi_param_t */
    ngx_flag_t                   pass_authorization;
    ngx_uint_t                   max_in_flight;
    ngx_str_t                    process_group;    /* "" or "off": embedded */
    /* requests of this location in this worker (the event loop's only) */
    ngx_uint_t                   in_flight;
} ngx_http_oxwsgi_loc_conf_t;


/* Per-request glue: the events the Rust side waits on. */
typedef struct {
    ngx_http_request_t          *request;
    void                        *state;            /* Rust NgxRequest */
    ngx_thread_pool_t           *thread_pool;
    ngx_event_t                  poll;             /* drains output while a task runs */
    ngx_chain_t                 *free;
    ngx_chain_t                 *busy;
} ngx_http_oxwsgi_ctx_t;


/*
 * The event-loop half of a dispatcher (src/nginx/dispatch.rs), one per thread
 * pool and worker: our own eventfd that runners write when they complete work
 * (never ngx_notify, whose one handler belongs to the thread pool), and a timer
 * that looks for runners stuck in one request while work waits.
 */
typedef struct {
    ngx_connection_t             conn;
    ngx_event_t                  read;
    ngx_event_t                  write;
    ngx_event_t                  tick;
    void                        *data;             /* Rust Dispatcher */
    ngx_fd_t                     fd;
} ngx_http_oxwsgi_dispatch_t;


extern ngx_module_t  ngx_http_oxwsgi_module;
extern const char   *ngx_http_oxwsgi_nginx_version;


ngx_http_oxwsgi_ctx_t *ngx_http_oxwsgi_create_ctx(ngx_http_request_t *r,
    void *state);
void ngx_http_oxwsgi_job_done(ngx_http_oxwsgi_ctx_t *ctx);
ngx_http_oxwsgi_dispatch_t *ngx_http_oxwsgi_dispatch_create(void *data);
void ngx_http_oxwsgi_dispatch_tick(ngx_http_oxwsgi_dispatch_t *d,
    ngx_msec_t ms);
ngx_int_t ngx_http_oxwsgi_wait_write(ngx_http_request_t *r);
void ngx_http_oxwsgi_stop_write_wait(ngx_http_request_t *r);
void ngx_http_oxwsgi_poll_timer(ngx_http_oxwsgi_ctx_t *ctx, ngx_msec_t ms);
void ngx_http_oxwsgi_conf_error(ngx_conf_t *cf, const u_char *msg, size_t len);
void ngx_http_oxwsgi_log(ngx_log_t *log, ngx_uint_t level, u_char *msg,
    size_t len);


#endif /* _NGX_HTTP_OXWSGI_MODULE_H_INCLUDED_ */
