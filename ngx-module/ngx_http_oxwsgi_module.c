
/*
 * ngx_http_oxwsgi_module.c -- the C half of the nginx module.
 *
 * The module, context and command tables, configuration create/merge, the
 * thread-task and event glue, and small helpers for what only nginx macros
 * express. Request handling and every policy decision live in Rust
 * (src/nginx/); the functions named ngx_http_oxwsgi_rs_* are Rust entry
 * points, each of which catches panics.
 *
 * The ngx_modules / ngx_module_names / ngx_module_order arrays nginx looks up
 * after load_module are defined in Rust: a cdylib exports only Rust items.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <ngx_thread_pool.h>
#include <nginx.h>

#include "ngx_http_oxwsgi_module.h"


/* Rust entry points (src/nginx/entry.rs). */
size_t ngx_http_oxwsgi_rs_check(ngx_uint_t what, u_char *data, size_t len,
    u_char *err, size_t errlen);
ngx_int_t ngx_http_oxwsgi_rs_init_process(ngx_cycle_t *cycle,
    ngx_http_oxwsgi_main_conf_t *mcf);
void ngx_http_oxwsgi_rs_exit_process(ngx_cycle_t *cycle);
ngx_int_t ngx_http_oxwsgi_rs_handler(ngx_http_request_t *r);
void ngx_http_oxwsgi_rs_body_read(void *state);
void ngx_http_oxwsgi_rs_task(void *task_side);
void ngx_http_oxwsgi_rs_task_done(void *state);
void ngx_http_oxwsgi_rs_write_ready(void *state);
void ngx_http_oxwsgi_rs_poll(void *state);
void ngx_http_oxwsgi_rs_cleanup(void *state);
void ngx_http_oxwsgi_rs_orphan_done(void *task_side);

/* what ngx_http_oxwsgi_rs_check checks */
#define NGX_HTTP_OXWSGI_CHECK_SCRIPT   1
#define NGX_HTTP_OXWSGI_CHECK_HOME     2
#define NGX_HTTP_OXWSGI_CHECK_PATH     3
#define NGX_HTTP_OXWSGI_CHECK_IMPORT   4
#define NGX_HTTP_OXWSGI_CHECK_CALLABLE 5

#define NGX_HTTP_OXWSGI_DEFAULT_MAX_IN_FLIGHT  1024


static ngx_int_t ngx_http_oxwsgi_handler(ngx_http_request_t *r);
static void *ngx_http_oxwsgi_create_main_conf(ngx_conf_t *cf);
static void *ngx_http_oxwsgi_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_oxwsgi_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static char *ngx_http_oxwsgi_app(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_oxwsgi_python_home(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_oxwsgi_path_list(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_oxwsgi_param(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_http_oxwsgi_init_process(ngx_cycle_t *cycle);
static void ngx_http_oxwsgi_exit_process(ngx_cycle_t *cycle);


static ngx_conf_num_bounds_t  ngx_http_oxwsgi_max_in_flight_bounds = {
    ngx_conf_check_num_bounds, 1, 1000000
};


static ngx_command_t  ngx_http_oxwsgi_commands[] = {

    { ngx_string("wsgi_app"),
      NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_oxwsgi_app,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("wsgi_python_home"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_oxwsgi_python_home,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("wsgi_python_path"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_oxwsgi_path_list,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_oxwsgi_main_conf_t, python_path),
      (void *) NGX_HTTP_OXWSGI_CHECK_PATH },

    { ngx_string("wsgi_import"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_oxwsgi_path_list,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_oxwsgi_main_conf_t, imports),
      (void *) NGX_HTTP_OXWSGI_CHECK_IMPORT },

    { ngx_string("wsgi_max_in_flight"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_oxwsgi_loc_conf_t, max_in_flight),
      &ngx_http_oxwsgi_max_in_flight_bounds },

    { ngx_string("wsgi_thread_pool"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_oxwsgi_loc_conf_t, thread_pool_name),
      NULL },

    { ngx_string("wsgi_param"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE23,
      ngx_http_oxwsgi_param,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("wsgi_pass_authorization"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_oxwsgi_loc_conf_t, pass_authorization),
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_oxwsgi_module_ctx = {
    NULL,                                  /* preconfiguration */
    NULL,                                  /* postconfiguration */

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
    NULL,                                  /* init module */
    ngx_http_oxwsgi_init_process,          /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_oxwsgi_exit_process,          /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


const char  *ngx_http_oxwsgi_nginx_version = NGINX_VER;


/* ---- configuration ------------------------------------------------------ */


static char *
ngx_http_oxwsgi_check(ngx_conf_t *cf, ngx_uint_t what, ngx_str_t *value)
{
    size_t  n;
    u_char  err[1024];

    n = ngx_http_oxwsgi_rs_check(what, value->data, value->len, err,
                                 sizeof(err));
    if (n == 0) {
        return NGX_CONF_OK;
    }

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "\"%V\": %*s",
                       &((ngx_str_t *) cf->args->elts)[0], n, err);
    return NGX_CONF_ERROR;
}


static void *
ngx_http_oxwsgi_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_oxwsgi_main_conf_t  *mcf;

    mcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_oxwsgi_main_conf_t));
    if (mcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     mcf->python_home = { 0, NULL };
     *     mcf->python_path = NULL;
     *     mcf->imports = NULL;
     *     mcf->enabled = 0;
     */

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

    /*
     * set by ngx_pcalloc():
     *
     *     lcf->script = { 0, NULL };
     *     lcf->callable = { 0, NULL };
     *     lcf->prefix = { 0, NULL };
     *     lcf->no_prefix = 0;
     *     lcf->thread_pool_name = { 0, NULL };
     *     lcf->thread_pool = NULL;
     */

    lcf->params = NGX_CONF_UNSET_PTR;
    lcf->pass_authorization = NGX_CONF_UNSET;
    lcf->max_in_flight = NGX_CONF_UNSET_UINT;

    return lcf;
}


static char *
ngx_http_oxwsgi_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_oxwsgi_loc_conf_t  *prev = parent;
    ngx_http_oxwsgi_loc_conf_t  *conf = child;

    ngx_conf_merge_str_value(conf->thread_pool_name, prev->thread_pool_name,
                             "default");
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

    /* an undeclared pool other than "default" fails in thread_pool's init */
    conf->thread_pool = ngx_thread_pool_add(cf, &conf->thread_pool_name);
    if (conf->thread_pool == NULL) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_oxwsgi_app(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_oxwsgi_loc_conf_t  *lcf = conf;

    size_t                        n;
    ngx_str_t                    *value, opt;
    ngx_uint_t                    i;
    ngx_http_core_loc_conf_t     *clcf;
    ngx_http_oxwsgi_main_conf_t  *mcf;

    if (lcf->script.data) {
        return "is duplicate";
    }

    value = cf->args->elts;
    lcf->script = value[1];

    if (ngx_conf_full_name(cf->cycle, &lcf->script, 0) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (ngx_http_oxwsgi_check(cf, NGX_HTTP_OXWSGI_CHECK_SCRIPT, &lcf->script)
        != NGX_CONF_OK)
    {
        return NGX_CONF_ERROR;
    }

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "callable=", 9) == 0) {
            opt.data = value[i].data + 9;
            opt.len = value[i].len - 9;

            if (ngx_http_oxwsgi_check(cf, NGX_HTTP_OXWSGI_CHECK_CALLABLE, &opt)
                != NGX_CONF_OK)
            {
                return NGX_CONF_ERROR;
            }

            lcf->callable = opt;
            continue;
        }

        n = value[i].len;
        for (opt.len = 0; opt.len < n; opt.len++) {
            if (value[i].data[opt.len] == '=') {
                break;
            }
        }
        opt.data = value[i].data;

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"wsgi_app\": unknown option \"%V\" "
                           "(the only option is callable=NAME)", &opt);
        return NGX_CONF_ERROR;
    }

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_oxwsgi_handler;

    /* SCRIPT_NAME is the location prefix, without a trailing slash */

    if (clcf->named || clcf->noname
#if (NGX_PCRE)
        || clcf->regex
#endif
       )
    {
        lcf->no_prefix = 1;

    } else {
        lcf->prefix = clcf->name;
        while (lcf->prefix.len && lcf->prefix.data[lcf->prefix.len - 1] == '/')
        {
            lcf->prefix.len--;
        }
    }

    mcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_oxwsgi_module);
    mcf->enabled = 1;

    return NGX_CONF_OK;
}


static char *
ngx_http_oxwsgi_python_home(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_oxwsgi_main_conf_t  *mcf = conf;

    ngx_str_t  *value;

    if (mcf->python_home.data) {
        return "is duplicate";
    }

    value = cf->args->elts;
    mcf->python_home = value[1];

    if (ngx_conf_full_name(cf->cycle, &mcf->python_home, 0) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return ngx_http_oxwsgi_check(cf, NGX_HTTP_OXWSGI_CHECK_HOME,
                                 &mcf->python_home);
}


/* wsgi_python_path and wsgi_import: one or more paths, added to a list */

static char *
ngx_http_oxwsgi_path_list(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    char  *p = conf;

    ngx_str_t     *value, *s;
    ngx_uint_t     i;
    ngx_array_t  **a;

    a = (ngx_array_t **) (p + cmd->offset);

    if (*a == NULL) {
        *a = ngx_array_create(cf->pool, 4, sizeof(ngx_str_t));
        if (*a == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {
        s = ngx_array_push(*a);
        if (s == NULL) {
            return NGX_CONF_ERROR;
        }

        *s = value[i];

        if (ngx_conf_full_name(cf->cycle, s, 0) != NGX_OK) {
            return NGX_CONF_ERROR;
        }

        if (ngx_http_oxwsgi_check(cf, (ngx_uint_t) cmd->post, s)
            != NGX_CONF_OK)
        {
            return NGX_CONF_ERROR;
        }
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_oxwsgi_param(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_oxwsgi_loc_conf_t  *lcf = conf;

    ngx_str_t                         *value;
    ngx_http_oxwsgi_param_t           *param;
    ngx_http_compile_complex_value_t   ccv;

    value = cf->args->elts;

    if (lcf->params == NGX_CONF_UNSET_PTR || lcf->params == NULL) {
        lcf->params = ngx_array_create(cf->pool, 4,
                                       sizeof(ngx_http_oxwsgi_param_t));
        if (lcf->params == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    if (value[1].len == 0) {
        return "takes a non-empty name";
    }

    param = ngx_array_push(lcf->params);
    if (param == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(param, sizeof(ngx_http_oxwsgi_param_t));
    param->key = value[1];

    ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));
    ccv.cf = cf;
    ccv.value = &value[2];
    ccv.complex_value = &param->value;

    if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (cf->args->nelts == 4) {
        if (ngx_strcmp(value[3].data, "if_not_empty") != 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\" "
                               "(the only one is if_not_empty)", &value[3]);
            return NGX_CONF_ERROR;
        }

        param->skip_empty = 1;
    }

    return NGX_CONF_OK;
}


/* ---- processes ---------------------------------------------------------- */


ngx_http_oxwsgi_main_conf_t *
ngx_http_oxwsgi_cycle_main_conf(ngx_cycle_t *cycle)
{
    if (cycle->conf_ctx[ngx_http_module.index] == NULL) {
        return NULL;
    }

    return ngx_http_cycle_get_module_main_conf(cycle, ngx_http_oxwsgi_module);
}


static ngx_int_t
ngx_http_oxwsgi_init_process(ngx_cycle_t *cycle)
{
    ngx_http_oxwsgi_main_conf_t  *mcf;

    /* Python starts in workers only: never in the master, cache processes */

    if (ngx_process != NGX_PROCESS_WORKER && ngx_process != NGX_PROCESS_SINGLE) {
        return NGX_OK;
    }

    mcf = ngx_http_oxwsgi_cycle_main_conf(cycle);
    if (mcf == NULL || !mcf->enabled) {
        return NGX_OK;
    }

    return ngx_http_oxwsgi_rs_init_process(cycle, mcf);
}


static void
ngx_http_oxwsgi_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_oxwsgi_rs_exit_process(cycle);
}


/* ---- requests ----------------------------------------------------------- */


static ngx_int_t
ngx_http_oxwsgi_handler(ngx_http_request_t *r)
{
    return ngx_http_oxwsgi_rs_handler(r);
}


ngx_http_oxwsgi_main_conf_t *
ngx_http_oxwsgi_req_main_conf(ngx_http_request_t *r)
{
    return ngx_http_get_module_main_conf(r, ngx_http_oxwsgi_module);
}


ngx_http_oxwsgi_loc_conf_t *
ngx_http_oxwsgi_req_loc_conf(ngx_http_request_t *r)
{
    return ngx_http_get_module_loc_conf(r, ngx_http_oxwsgi_module);
}


static void
ngx_http_oxwsgi_cleanup(void *data)
{
    ngx_http_oxwsgi_ctx_t  *ctx = data;

    if (ctx->poll.timer_set) {
        ngx_del_timer(&ctx->poll);
    }

    ngx_http_oxwsgi_rs_cleanup(ctx->state);
}


/* runs on a thread of the pool: no nginx structure may be touched here */

static void
ngx_http_oxwsgi_thread(void *data, ngx_log_t *log)
{
    ngx_http_oxwsgi_rs_task(data);
}


static void
ngx_http_oxwsgi_task_done(ngx_event_t *ev)
{
    ngx_connection_t       *c;
    ngx_http_request_t     *r;
    ngx_http_oxwsgi_ctx_t  *ctx;

    ctx = ev->data;
    r = ctx->request;
    c = r->connection;

    r->main->blocked--;

    ngx_http_set_log_request(c->log, r);

    ngx_http_oxwsgi_rs_task_done(ctx->state);

    ngx_http_run_posted_requests(c);
}


static void
ngx_http_oxwsgi_poll_handler(ngx_event_t *ev)
{
    ngx_connection_t       *c;
    ngx_http_request_t     *r;
    ngx_http_oxwsgi_ctx_t  *ctx;

    ctx = ev->data;
    r = ctx->request;
    c = r->connection;

    ngx_http_oxwsgi_rs_poll(ctx->state);

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
            ngx_http_oxwsgi_set_conn_error(r);
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

    ctx->task = ngx_thread_task_alloc(r->pool, 0);
    if (ctx->task == NULL) {
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

    ctx->task->handler = ngx_http_oxwsgi_thread;
    ctx->task->event.data = ctx;
    ctx->task->event.handler = ngx_http_oxwsgi_task_done;

    ctx->poll.data = ctx;
    ctx->poll.handler = ngx_http_oxwsgi_poll_handler;
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


static void
ngx_http_oxwsgi_body_handler(ngx_http_request_t *r)
{
    ngx_http_oxwsgi_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_oxwsgi_module);

    ngx_http_oxwsgi_rs_body_read(ctx->state);
}


ngx_int_t
ngx_http_oxwsgi_read_body(ngx_http_request_t *r)
{
    return ngx_http_read_client_request_body(r, ngx_http_oxwsgi_body_handler);
}


/* ctx->task->ctx must point at the Rust task data before the first post */

ngx_int_t
ngx_http_oxwsgi_post_task(ngx_http_oxwsgi_ctx_t *ctx)
{
    ngx_http_request_t  *r;

    r = ctx->request;

    if (ngx_thread_task_post(ctx->thread_pool, ctx->task) != NGX_OK) {
        return NGX_ERROR;
    }

    /* the request cannot be freed while the task runs */
    r->main->blocked++;

    return NGX_OK;
}


static void
ngx_http_oxwsgi_orphan_done(ngx_event_t *ev)
{
    ngx_thread_task_t  *task = ev->data;

    ngx_http_oxwsgi_rs_orphan_done(task->ctx);

    ngx_free(task);
}


/*
 * A request ended (terminated by nginx) while its application was still
 * running: one more task, owning only Rust data, closes the iterable.
 */

ngx_int_t
ngx_http_oxwsgi_post_orphan(ngx_http_oxwsgi_ctx_t *ctx, void *task_side)
{
    ngx_thread_task_t  *task;

    task = ngx_calloc(sizeof(ngx_thread_task_t), ngx_cycle->log);
    if (task == NULL) {
        return NGX_ERROR;
    }

    task->ctx = task_side;
    task->handler = ngx_http_oxwsgi_thread;
    task->event.data = task;
    task->event.handler = ngx_http_oxwsgi_orphan_done;
    task->event.log = ngx_cycle->log;

    if (ngx_thread_task_post(ctx->thread_pool, task) != NGX_OK) {
        ngx_free(task);
        return NGX_ERROR;
    }

    return NGX_OK;
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


static ngx_buf_t *
ngx_http_oxwsgi_link(ngx_http_oxwsgi_ctx_t *ctx, ngx_chain_t ***ll)
{
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    cl = ngx_chain_get_free_buf(ctx->request->pool, &ctx->free);
    if (cl == NULL) {
        return NULL;
    }

    b = cl->buf;
    ngx_memzero(b, sizeof(ngx_buf_t));
    b->tag = (ngx_buf_tag_t) &ngx_http_oxwsgi_module;

    cl->next = NULL;
    **ll = cl;
    *ll = &cl->next;

    return b;
}


/* data stays owned by Rust until the buffer leaves ctx->busy */

ngx_buf_t *
ngx_http_oxwsgi_add_mem(ngx_http_oxwsgi_ctx_t *ctx, ngx_chain_t ***ll,
    u_char *data, size_t len)
{
    ngx_buf_t  *b;

    b = ngx_http_oxwsgi_link(ctx, ll);
    if (b == NULL) {
        return NULL;
    }

    b->memory = 1;
    b->start = data;
    b->pos = data;
    b->last = data + len;
    b->end = data + len;

    return b;
}


/* takes ownership of fd: it is closed with the request pool */

ngx_buf_t *
ngx_http_oxwsgi_add_file(ngx_http_oxwsgi_ctx_t *ctx, ngx_chain_t ***ll,
    ngx_fd_t fd, off_t offset, off_t len)
{
    ngx_buf_t                *b;
    ngx_pool_t               *pool;
    ngx_file_t               *file;
    ngx_pool_cleanup_t       *cln;
    ngx_pool_cleanup_file_t  *clnf;

    pool = ctx->request->pool;

    cln = ngx_pool_cleanup_add(pool, sizeof(ngx_pool_cleanup_file_t));
    if (cln == NULL) {
        ngx_close_file(fd);
        return NULL;
    }

    cln->handler = ngx_pool_cleanup_file;
    clnf = cln->data;
    clnf->fd = fd;
    clnf->name = (u_char *) "";
    clnf->log = pool->log;

    file = ngx_pcalloc(pool, sizeof(ngx_file_t));
    if (file == NULL) {
        return NULL;
    }

    file->fd = fd;
    file->log = ctx->request->connection->log;
    ngx_str_set(&file->name, "wsgi.file_wrapper");

    b = ngx_http_oxwsgi_link(ctx, ll);
    if (b == NULL) {
        return NULL;
    }

    b->in_file = 1;
    b->file = file;
    b->file_pos = offset;
    b->file_last = offset + len;

    return b;
}


ngx_buf_t *
ngx_http_oxwsgi_add_last(ngx_http_oxwsgi_ctx_t *ctx, ngx_chain_t ***ll,
    ngx_uint_t last, ngx_uint_t flush)
{
    ngx_buf_t           *b;
    ngx_http_request_t  *r;

    r = ctx->request;

    b = ngx_http_oxwsgi_link(ctx, ll);
    if (b == NULL) {
        return NULL;
    }

    if (last) {
        if (r == r->main) {
            b->last_buf = 1;
        } else {
            b->last_in_chain = 1;
        }
    }

    b->flush = flush;
    b->sync = 1;

    return b;
}


ngx_int_t
ngx_http_oxwsgi_output(ngx_http_oxwsgi_ctx_t *ctx, ngx_chain_t *out)
{
    ngx_int_t            rc;
    ngx_http_request_t  *r;

    r = ctx->request;

    rc = ngx_http_output_filter(r, out);

    ngx_chain_update_chains(r->pool, &ctx->free, &ctx->busy, &out,
                            (ngx_buf_tag_t) &ngx_http_oxwsgi_module);

    return rc;
}


ngx_uint_t
ngx_http_oxwsgi_is_busy(ngx_http_oxwsgi_ctx_t *ctx, ngx_buf_t *b)
{
    ngx_chain_t  *cl;

    for (cl = ctx->busy; cl; cl = cl->next) {
        if (cl->buf == b) {
            return 1;
        }
    }

    return 0;
}


ngx_uint_t
ngx_http_oxwsgi_backed_up(ngx_http_oxwsgi_ctx_t *ctx)
{
    return ctx->busy != NULL;
}


ngx_int_t
ngx_http_oxwsgi_set_status(ngx_http_request_t *r, ngx_uint_t status,
    u_char *line, size_t len)
{
    u_char  *p;

    r->headers_out.status = status;

    if (len) {
        p = ngx_pnalloc(r->pool, len);
        if (p == NULL) {
            return NGX_ERROR;
        }

        ngx_memcpy(p, line, len);
        r->headers_out.status_line.data = p;
        r->headers_out.status_line.len = len;
    }

    return NGX_OK;
}


/* Content-Length is set by the caller (content_length_n) */

ngx_int_t
ngx_http_oxwsgi_set_header(ngx_http_request_t *r, u_char *name, size_t nlen,
    u_char *value, size_t vlen)
{
    u_char           *k, *v, *low;
    ngx_table_elt_t  *h;

    v = ngx_pnalloc(r->pool, vlen + 1);
    if (v == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(v, value, vlen);
    v[vlen] = '\0';

    if (nlen == sizeof("Content-Type") - 1
        && ngx_strncasecmp(name, (u_char *) "Content-Type", nlen) == 0)
    {
        r->headers_out.content_type.data = v;
        r->headers_out.content_type.len = vlen;
        r->headers_out.content_type_len = vlen;
        r->headers_out.content_type_lowcase = NULL;
        r->headers_out.content_type_hash = 0;
        return NGX_OK;
    }

    k = ngx_pnalloc(r->pool, nlen + 1);
    low = ngx_pnalloc(r->pool, nlen + 1);
    if (k == NULL || low == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(k, name, nlen);
    k[nlen] = '\0';
    ngx_strlow(low, k, nlen);
    low[nlen] = '\0';

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    h->key.data = k;
    h->key.len = nlen;
    h->value.data = v;
    h->value.len = vlen;
    h->lowcase_key = low;

    /* headers nginx would otherwise add or alter itself */

    if (nlen == 6 && ngx_strcmp(low, "server") == 0) {
        r->headers_out.server = h;

    } else if (nlen == 4 && ngx_strcmp(low, "date") == 0) {
        r->headers_out.date = h;

    } else if (nlen == 16 && ngx_strcmp(low, "content-encoding") == 0) {
        r->headers_out.content_encoding = h;
    }

    return NGX_OK;
}


void
ngx_http_oxwsgi_log(ngx_log_t *log, ngx_uint_t level, u_char *msg, size_t len)
{
    ngx_log_error(level, log, 0, "%*s", len, msg);
}


ngx_uint_t
ngx_http_oxwsgi_header_only(ngx_http_request_t *r)
{
    return r->header_only;
}


ngx_uint_t
ngx_http_oxwsgi_conn_error(ngx_http_request_t *r)
{
    return r->connection->error;
}


void
ngx_http_oxwsgi_set_conn_error(ngx_http_request_t *r)
{
    r->connection->error = 1;
}


ngx_uint_t
ngx_http_oxwsgi_is_https(ngx_http_request_t *r)
{
#if (NGX_HTTP_SSL)
    return r->connection->ssl != NULL;
#else
    return 0;
#endif
}


ngx_uint_t
ngx_http_oxwsgi_write_timedout(ngx_http_request_t *r)
{
    return r->connection->write->timedout;
}


ngx_str_t
ngx_http_oxwsgi_server_name(ngx_http_request_t *r)
{
    ngx_http_core_srv_conf_t  *cscf;

    cscf = ngx_http_get_module_srv_conf(r, ngx_http_core_module);

    if (cscf->server_name.len) {
        return cscf->server_name;
    }

    return r->headers_in.server;
}


/* local address text into buf (returns its length), both ports */

size_t
ngx_http_oxwsgi_addrs(ngx_http_request_t *r, u_char *buf, size_t len,
    ngx_uint_t *server_port, ngx_uint_t *remote_port)
{
    ngx_str_t          s;
    ngx_connection_t  *c;

    c = r->connection;
    s.data = buf;
    s.len = len;

    if (ngx_connection_local_sockaddr(c, &s, 0) != NGX_OK) {
        s.len = 0;
    }

    *server_port = c->local_sockaddr ? ngx_inet_get_port(c->local_sockaddr)
                                     : 0;
    *remote_port = ngx_inet_get_port(c->sockaddr);

    return s.len;
}


ngx_uint_t
ngx_http_oxwsgi_buf_in_file(ngx_buf_t *b)
{
    return b->in_file;
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
