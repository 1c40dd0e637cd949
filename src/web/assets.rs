//! The stylesheet, script and icon, embedded in the binary so it runs from any directory.

use actix_web::http::header;
use actix_web::{HttpResponse, web};

const STYLE_CSS: &str = include_str!("../../static/style.css");
const APP_JS: &str = include_str!("../../static/app.js");
const FAVICON: &[u8] = include_bytes!("../../static/favicon.ico");

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/static/style.css").get(style))
        .service(web::resource("/static/app.js").get(script))
        .service(web::resource("/favicon.ico").get(favicon));
}

fn asset(content_type: &'static str, body: &'static [u8]) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(body)
}

async fn style() -> HttpResponse {
    asset("text/css; charset=utf-8", STYLE_CSS.as_bytes())
}

async fn script() -> HttpResponse {
    asset("text/javascript; charset=utf-8", APP_JS.as_bytes())
}

async fn favicon() -> HttpResponse {
    asset("image/x-icon", FAVICON)
}
