//! Builds the running server: pool, migrations, middleware, routes.

use std::net::TcpListener;

use actix_web::dev::Server;
use actix_web::{App, HttpServer, web as aweb};

use crate::config::Config;
use crate::db::{self, DbError, Pool};

/// A server that is bound and ready to run.
pub struct Application {
    port: u16,
    server: Server,
    pool: Pool,
}

/// Why the server could not start.
#[derive(Debug)]
pub enum StartError {
    Db(DbError),
    Bind(String, std::io::Error),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Db(e) => write!(f, "{e}"),
            Self::Bind(addr, e) => write!(f, "cannot listen on {addr}: {e}"),
        }
    }
}

impl std::error::Error for StartError {}

impl From<DbError> for StartError {
    fn from(e: DbError) -> Self {
        Self::Db(e)
    }
}

impl Application {
    /// Connects to the database (running migrations), binds the listener and
    /// prepares the server. Binding here, not in `run`, lets tests use port 0
    /// and learn the port before any request.
    pub fn build(config: Config) -> Result<Self, StartError> {
        let pool = db::connect(&config.database_url)?;
        let listener = TcpListener::bind(&config.bind)
            .map_err(|e| StartError::Bind(config.bind.clone(), e))?;
        let port = listener
            .local_addr()
            .map_err(|e| StartError::Bind(config.bind.clone(), e))?
            .port();
        let state = crate::web::AppState::new(pool.clone(), config.clone());
        let mut server = HttpServer::new(move || {
            App::new()
                .app_data(aweb::Data::new(state.clone()))
                .configure(crate::web::configure)
        })
        .listen(listener)
        .map_err(|e| StartError::Bind(config.bind.clone(), e))?;
        if let Some(workers) = config.workers {
            server = server.workers(workers);
        }
        Ok(Self {
            port,
            server: server.run(),
            pool,
        })
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The connection pool (tests inspect the database through it).
    pub fn pool(&self) -> Pool {
        self.pool.clone()
    }

    /// Serves until the process is told to stop (SIGINT/SIGTERM drain in-flight
    /// requests first).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}
