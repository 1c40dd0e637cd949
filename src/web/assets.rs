//! The stylesheet and script, embedded in the binary so it runs from any directory.

use actix_web::http::header;
use actix_web::{HttpResponse, web};

const STYLE_CSS: &str = include_str!("../../static/style.css");
const APP_JS: &str = include_str!("../../static/app.js");

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/static/style.css", web::get().to(style))
        .route("/static/app.js", web::get().to(script));
}

fn asset(content_type: &'static str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(body)
}

async fn style() -> HttpResponse {
    asset("text/css; charset=utf-8", STYLE_CSS)
}

async fn script() -> HttpResponse {
    asset("text/javascript; charset=utf-8", APP_JS)
}
