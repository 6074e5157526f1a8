/* bindgen entry point for the nginx adapter: the nginx API we call from Rust. */
#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <ngx_http.h>
#include <ngx_thread_pool.h>
#include "ngx_http_oxwsgi_module.h"
