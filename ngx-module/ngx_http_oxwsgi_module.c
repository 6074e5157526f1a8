
/*
 * The C half of the nginx module: what needs nginx's C macros (the module
 * and context tables, conf create/merge with NGX_CONF_UNSET, the
 * thread-task and event trampolines, the variadic log calls). Everything else
 * is Rust (src/nginx/); its entry points catch panics. The ngx_modules arrays
 * are defined in Rust: a cdylib exports only Rust items.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <ngx_thread_pool.h>
#include <nginx.h>

#include <sys/eventfd.h>

#include "ngx_http_oxwsgi_module.h"


/* Rust: the directives (src/nginx/commands.rs) and entry points (entry.rs). */
extern ngx_command_t  ngx_http_oxwsgi_commands[];
ngx_int_t ngx_http_oxwsgi_rs_postconfiguration(ngx_conf_t *cf);
ngx_int_t ngx_http_oxwsgi_rs_init_module(ngx_cycle_t *cycle);
void ngx_http_oxwsgi_rs_exit_master(ngx_cycle_t *cycle);
void ngx_http_oxwsgi_rs_child_init(void);
ngx_int_t ngx_http_oxwsgi_rs_init_process(ngx_cycle_t *cycle,
    ngx_http_oxwsgi_main_conf_t *mcf);
void ngx_http_oxwsgi_rs_exit_process(ngx_cycle_t *cycle);
void ngx_http_oxwsgi_rs_dispatch_read(ngx_event_t *ev);
void ngx_http_oxwsgi_rs_dispatch_timer(ngx_event_t *ev);
void ngx_http_oxwsgi_rs_task_done(void *state);
void ngx_http_oxwsgi_rs_write_ready(void *state);
void ngx_http_oxwsgi_rs_poll_handler(ngx_event_t *ev);
void ngx_http_oxwsgi_rs_cleanup(void *state);

#define NGX_HTTP_OXWSGI_DEFAULT_MAX_IN_FLIGHT  1024


static void *ngx_http_oxwsgi_create_main_conf(ngx_conf_t *cf);
static void *ngx_http_oxwsgi_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_oxwsgi_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static ngx_int_t ngx_http_oxwsgi_init_process(ngx_cycle_t *cycle);


static ngx_http_module_t  ngx_http_oxwsgi_module_ctx = {
    NULL,                                  /* preconfiguration */
    ngx_http_oxwsgi_rs_postconfiguration,  /* postconfiguration */

    ngx_http_oxwsgi_create_main_conf,      /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_oxwsgi_create_loc_conf,       /* create location configuration */
    ngx_http_oxwsgi_merge_loc_conf         /* merge location configuration */
};


ngx_module_t  ngx_http_oxwsgi_module = {
    NGX_MODULE_V1,
    &ngx_http_oxwsgi_module_ctx,           /* module context */
    ngx_http_oxwsgi_commands,              /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    ngx_http_oxwsgi_rs_init_module,        /* init module */
    ngx_http_oxwsgi_init_process,          /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_oxwsgi_rs_exit_process,       /* exit process */
    ngx_http_oxwsgi_rs_exit_master,        /* exit master */
    NGX_MODULE_V1_PADDING
};


const char  *ngx_http_oxwsgi_nginx_version = NGINX_VER;


/* ---- configuration ------------------------------------------------------ */


static void *
ngx_http_oxwsgi_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_oxwsgi_main_conf_t  *mcf;

    mcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_oxwsgi_main_conf_t));
    if (mcf == NULL) {
        return NULL;
    }

    return mcf;
}


static void *
ngx_http_oxwsgi_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_oxwsgi_loc_conf_t  *lcf;

    lcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_oxwsgi_loc_conf_t));
    if (lcf == NULL) {
        return NULL;
    }

    lcf->params = NGX_CONF_UNSET_PTR;
    lcf->pass_authorization = NGX_CONF_UNSET;
    lcf->max_in_flight = NGX_CONF_UNSET_UINT;

    return lcf;
}


static char *
ngx_http_oxwsgi_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_oxwsgi_loc_conf_t   *prev = parent;
    ngx_http_oxwsgi_loc_conf_t   *conf = child;
    ngx_http_oxwsgi_main_conf_t  *mcf;

    ngx_conf_merge_str_value(conf->thread_pool_name, prev->thread_pool_name,
                             "default");
    ngx_conf_merge_str_value(conf->process_group, prev->process_group, "");
    ngx_conf_merge_ptr_value(conf->params, prev->params, NULL);
    ngx_conf_merge_value(conf->pass_authorization, prev->pass_authorization,
                         0);
    ngx_conf_merge_uint_value(conf->max_in_flight, prev->max_in_flight,
                              NGX_HTTP_OXWSGI_DEFAULT_MAX_IN_FLIGHT);

    if (conf->script.data == NULL) {
        return NGX_CONF_OK;
    }

    if (conf->callable.data == NULL) {
        ngx_str_set(&conf->callable, "application");
    }

    /* workers start Python only if some wsgi_app runs embedded (daemons.rs) */
    if (conf->process_group.len == 0
        || (conf->process_group.len == 3
            && ngx_strncmp(conf->process_group.data, "off", 3) == 0))
    {
        mcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_oxwsgi_module);
        mcf->enabled = 1;
    }

    /* an undeclared pool other than "default" fails in thread_pool's init */
    conf->thread_pool = ngx_thread_pool_add(cf, &conf->thread_pool_name);
    if (conf->thread_pool == NULL) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* directive errors from Rust: "<directive>": <message> */

void
ngx_http_oxwsgi_conf_error(ngx_conf_t *cf, const u_char *msg, size_t len)
{
    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "\"%V\": %*s",
                       &((ngx_str_t *) cf->args->elts)[0], len, msg);
}


/* ---- processes ---------------------------------------------------------- */


static ngx_int_t
ngx_http_oxwsgi_init_process(ngx_cycle_t *cycle)
{
    ngx_http_oxwsgi_main_conf_t  *mcf;

    ngx_http_oxwsgi_rs_child_init();

    /* Python starts in workers only: never in the master, cache processes */

    if (ngx_process != NGX_PROCESS_WORKER && ngx_process != NGX_PROCESS_SINGLE) {
        return NGX_OK;
    }

    if (cycle->conf_ctx[ngx_http_module.index] == NULL) {
        return NGX_OK;
    }

    mcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_oxwsgi_module);
    if (mcf == NULL || !mcf->enabled) {
        return NGX_OK;
    }

    return ngx_http_oxwsgi_rs_init_process(cycle, mcf);
}


/* ---- requests ----------------------------------------------------------- */


static void
ngx_http_oxwsgi_cleanup(void *data)
{
    ngx_http_oxwsgi_ctx_t  *ctx = data;

    if (ctx->poll.timer_set) {
        ngx_del_timer(&ctx->poll);
    }

    ngx_http_oxwsgi_rs_cleanup(ctx->state);
}


/*
 * The completion of one job of the request (src/nginx/dispatch.rs), on the
 * event loop: what nginx's thread-task completion did for a posted task.
 */

void
ngx_http_oxwsgi_job_done(ngx_http_oxwsgi_ctx_t *ctx)
{
    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    r = ctx->request;
    c = r->connection;

    r->main->blocked--;

    ngx_http_set_log_request(c->log, r);

    ngx_http_oxwsgi_rs_task_done(ctx->state);

    ngx_http_run_posted_requests(c);
}


static void
ngx_http_oxwsgi_writer(ngx_http_request_t *r)
{
    ngx_event_t               *wev;
    ngx_http_oxwsgi_ctx_t     *ctx;
    ngx_http_core_loc_conf_t  *clcf;

    ctx = ngx_http_get_module_ctx(r, ngx_http_oxwsgi_module);
    wev = r->connection->write;

    if (!wev->timedout && wev->delayed) {
        clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

        if (ngx_handle_write_event(wev, clcf->send_lowat) != NGX_OK) {
            r->connection->error = 1;
        } else {
            return;
        }
    }

    r->write_event_handler = ngx_http_request_empty_handler;

    if (!wev->timedout && wev->timer_set) {
        ngx_del_timer(wev);
    }

    ngx_http_oxwsgi_rs_write_ready(ctx->state);
}


ngx_http_oxwsgi_ctx_t *
ngx_http_oxwsgi_create_ctx(ngx_http_request_t *r, void *state)
{
    ngx_pool_cleanup_t     *cln;
    ngx_http_oxwsgi_ctx_t  *ctx;

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_oxwsgi_ctx_t));
    if (ctx == NULL) {
        return NULL;
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NULL;
    }

    ctx->request = r;
    ctx->state = state;
    ctx->thread_pool =
        ((ngx_http_oxwsgi_loc_conf_t *)
         ngx_http_get_module_loc_conf(r, ngx_http_oxwsgi_module))->thread_pool;

    ctx->poll.data = ctx;
    ctx->poll.handler = ngx_http_oxwsgi_rs_poll_handler;
    ctx->poll.log = r->connection->log;

    /*
     * Not cancelable: while a task runs, this timer is the only sign of the
     * request a gracefully exiting worker sees; it must wait for it.
     */
    ctx->poll.cancelable = 0;

    cln->handler = ngx_http_oxwsgi_cleanup;
    cln->data = ctx;

    ngx_http_set_ctx(r, ctx, ngx_http_oxwsgi_module);

    return ctx;
}


/* ---- dispatch (src/nginx/dispatch.rs) ---------------------------------- */


ngx_http_oxwsgi_dispatch_t *
ngx_http_oxwsgi_dispatch_create(void *data)
{
    ngx_uint_t                   flags;
    ngx_http_oxwsgi_dispatch_t  *d;

    d = ngx_calloc(sizeof(ngx_http_oxwsgi_dispatch_t), ngx_cycle->log);
    if (d == NULL) {
        return NULL;
    }

    d->fd = eventfd(0, EFD_NONBLOCK|EFD_CLOEXEC);
    if (d->fd == -1) {
        ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, ngx_errno,
                      "oxwsgi: eventfd() failed");
        ngx_free(d);
        return NULL;
    }

    d->data = data;

    d->conn.fd = d->fd;
    d->conn.data = d;
    d->conn.read = &d->read;
    d->conn.write = &d->write;
    d->conn.log = ngx_cycle->log;

    d->read.data = &d->conn;
    d->read.handler = ngx_http_oxwsgi_rs_dispatch_read;
    d->read.log = ngx_cycle->log;
    d->write.data = &d->conn;
    d->write.log = ngx_cycle->log;

    d->tick.data = d;
    d->tick.handler = ngx_http_oxwsgi_rs_dispatch_timer;
    d->tick.log = ngx_cycle->log;
    /* requests keep an exiting worker alive by their own timers */
    d->tick.cancelable = 1;

    flags = (ngx_event_flags & NGX_USE_CLEAR_EVENT) ? NGX_CLEAR_EVENT : 0;

    if (ngx_add_event(&d->read, NGX_READ_EVENT, flags) != NGX_OK) {
        close(d->fd);
        ngx_free(d);
        return NULL;
    }

    return d;
}


void
ngx_http_oxwsgi_dispatch_tick(ngx_http_oxwsgi_dispatch_t *d, ngx_msec_t ms)
{
    if (!d->tick.timer_set) {
        ngx_add_timer(&d->tick, ms);
    }
}


ngx_int_t
ngx_http_oxwsgi_wait_write(ngx_http_request_t *r)
{
    ngx_event_t               *wev;
    ngx_http_core_loc_conf_t  *clcf;

    wev = r->connection->write;
    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    r->write_event_handler = ngx_http_oxwsgi_writer;

    if (!wev->delayed) {
        ngx_add_timer(wev, clcf->send_timeout);
    }

    if (ngx_handle_write_event(wev, clcf->send_lowat) != NGX_OK) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


void
ngx_http_oxwsgi_poll_timer(ngx_http_oxwsgi_ctx_t *ctx, ngx_msec_t ms)
{
    if (ms == 0) {
        if (ctx->poll.timer_set) {
            ngx_del_timer(&ctx->poll);
        }
        return;
    }

    ngx_add_timer(&ctx->poll, ms);
}


void
ngx_http_oxwsgi_log(ngx_log_t *log, ngx_uint_t level, u_char *msg, size_t len)
{
    ngx_log_error(level, log, 0, "%*s", len, msg);
}


void
ngx_http_oxwsgi_stop_write_wait(ngx_http_request_t *r)
{
    ngx_event_t  *wev;

    wev = r->connection->write;

    if (r->write_event_handler == ngx_http_oxwsgi_writer) {
        r->write_event_handler = ngx_http_request_empty_handler;

        if (wev->timer_set) {
            ngx_del_timer(wev);
        }
    }
}
