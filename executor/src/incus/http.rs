//! An async Incus REST client over the daemon's Unix socket (hyper +
//! hyperlocal). It decodes every response as Incus's envelope, waits on
//! background operations (and re-reads an operation after an error body),
//! passes ETags as `If-Match`, and counts requests so callers can prove that
//! a converged apply writes nothing.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::Request;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use hyperlocal::{UnixConnector, Uri};
use serde_json::Value;

use super::{Api, Counters, IncusError, Method, Reply};

/// Where request traces go (the CLI sends them to stderr with
/// `ANKLUME_TRACE_HTTP=1`):
/// the library never prints; its user decides.
pub type Tracer = Arc<dyn Fn(&str) + Send + Sync>;

/// How long to wait for one operation, in seconds.
pub const OPERATION_TIMEOUT: u64 = 600;
/// How long any other request may take, in seconds: a daemon that stops
/// answering becomes an error, not a hang.
pub const REQUEST_TIMEOUT: u64 = 120;

/// Where the Incus socket is: `INCUS_SOCKET`, `INCUS_DIR/unix.socket`,
/// `/run/incus/unix.socket`, `/var/lib/incus/unix.socket`.
pub fn socket_path() -> PathBuf {
    if let Some(s) = std::env::var_os("INCUS_SOCKET") {
        return s.into();
    }
    if let Some(d) = std::env::var_os("INCUS_DIR") {
        return Path::new(&d).join("unix.socket");
    }
    let run = PathBuf::from("/run/incus/unix.socket");
    if run.exists() {
        return run;
    }
    PathBuf::from("/var/lib/incus/unix.socket")
}

/// A client for one Incus daemon.
#[derive(Clone)]
pub struct Incus {
    socket: PathBuf,
    client: Client<UnixConnector, Full<Bytes>>,
    counters: Arc<Counters>,
    tracer: Option<Tracer>,
}

impl Incus {
    /// A client for the socket at `socket`.
    pub fn new(socket: impl Into<PathBuf>) -> Incus {
        // No connection pool: one connection per request. incusd 6.0's
        // Unix listener peeks at the first bytes of each new connection
        // inside its accept loop, so a connection that is open but silent
        // stops it from accepting any other, including the callbacks of
        // LXC's stop hooks. hyper's pool makes exactly such connections: a
        // connect started while an idle one comes back is finished in the
        // background and parked unused. With a long operation wait in flight
        // that deadlocked incusd (every stop waited for its hook forever).
        // A Unix connect costs microseconds.
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(0)
            .build(UnixConnector);
        Incus {
            socket: socket.into(),
            client,
            counters: Arc::new(Counters::default()),
            tracer: None,
        }
    }

    /// A client for the socket found by [`socket_path`].
    pub fn from_env() -> Incus {
        Incus::new(socket_path())
    }

    /// The socket path.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Send a line per request and per reply to `tracer`.
    pub fn with_tracer(mut self, tracer: Tracer) -> Incus {
        self.tracer = Some(tracer);
        self
    }

    fn trace(&self, line: impl FnOnce() -> String) {
        if let Some(t) = &self.tracer {
            t(&line());
        }
    }

    async fn raw(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        if_match: Option<&str>,
    ) -> Result<(u16, Option<String>, Value), IncusError> {
        self.counters.count(method);
        self.trace(|| format!("incus: {method} {path} ..."));
        let uri: hyper::Uri = Uri::new(&self.socket, path).into();
        let mut req = Request::builder().method(method.as_str()).uri(uri);
        if body.is_some() {
            req = req.header("Content-Type", "application/json");
        }
        if let Some(tag) = if_match {
            req = req.header("If-Match", tag);
        }
        let bytes = body.map(|b| serde_json::to_vec(b).expect("JSON values serialise"));
        let req = req
            .body(Full::new(Bytes::from(bytes.unwrap_or_default())))
            .map_err(|e| IncusError::transport(format!("bad request {path}: {e}")))?;
        let limit = if path.contains("/wait?") {
            OPERATION_TIMEOUT + 30
        } else {
            REQUEST_TIMEOUT
        };
        let resp = tokio::time::timeout(
            std::time::Duration::from_secs(limit),
            self.client.request(req),
        )
        .await
        .map_err(|_| {
            IncusError::transport(format!(
                "{method} {path}: Incus at {} did not answer within {limit} s",
                self.socket.display()
            ))
        })?
        .map_err(|e| {
            IncusError::transport(format!(
                "cannot reach Incus at {}: {e} (is incusd running? set INCUS_SOCKET to its socket)",
                self.socket.display()
            ))
        })?;
        let status = resp.status().as_u16();
        self.trace(|| format!("incus: {method} {path} -> {status}"));
        let etag = resp
            .headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .map(|s| s.trim_matches('"').to_string());
        let body = tokio::time::timeout(
            std::time::Duration::from_secs(limit),
            resp.into_body().collect(),
        )
        .await
        .map_err(|_| {
            IncusError::transport(format!(
                "{method} {path}: reply not finished within {limit} s"
            ))
        })?
        .map_err(|e| IncusError::transport(format!("{method} {path}: reading the reply: {e}")))?
        .to_bytes();
        let json: Value = serde_json::from_slice(&body).map_err(|_| IncusError {
            code: status,
            message: format!(
                "{method} {path}: not a JSON reply: {}",
                String::from_utf8_lossy(&body[..body.len().min(200)])
            ),
        })?;
        Ok((status, etag, json))
    }
}

impl Api for Incus {
    /// One call: a sync reply is returned; an async one is waited for.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        if_match: Option<&str>,
    ) -> Result<Reply, IncusError> {
        let (status, etag, json) = self.raw(method, path, body, if_match).await?;
        match json.get("type").and_then(Value::as_str) {
            Some("sync") => Ok(Reply {
                metadata: json.get("metadata").cloned().unwrap_or(Value::Null),
                etag,
            }),
            Some("async") => {
                let op = json
                    .get("operation")
                    .and_then(Value::as_str)
                    .ok_or_else(|| IncusError {
                        code: status,
                        message: "async reply without an operation".into(),
                    })?
                    .to_string();
                self.wait(&op).await
            }
            _ => Err(error_of(status, &json)),
        }
    }

    /// Wait for an operation. After an error body, the operation is read
    /// again: a timed-out wait and a failure can look alike.
    async fn wait(&self, op: &str) -> Result<Reply, IncusError> {
        let base = op.split('?').next().unwrap_or(op);
        let path = format!("{base}/wait?timeout={OPERATION_TIMEOUT}");
        let (status, _, json) = self.raw(Method::Get, &path, None, None).await?;
        if json.get("type").and_then(Value::as_str) == Some("sync") {
            return check_operation(json.get("metadata").cloned().unwrap_or(Value::Null));
        }
        let first = error_of(status, &json);
        match self.raw(Method::Get, base, None, None).await {
            Ok((_, _, op_json)) if op_json.get("type").and_then(Value::as_str) == Some("sync") => {
                let md = op_json.get("metadata").cloned().unwrap_or(Value::Null);
                match md.get("status_code").and_then(Value::as_u64) {
                    Some(103) | Some(105) | Some(106) => Err(IncusError {
                        code: 504,
                        message: format!(
                            "operation {base} still running after {OPERATION_TIMEOUT} s"
                        ),
                    }),
                    _ => check_operation(md).map_err(|e| {
                        if e.message.is_empty() {
                            first.clone()
                        } else {
                            e
                        }
                    }),
                }
            }
            _ => Err(first),
        }
    }

    fn counters(&self) -> &Counters {
        &self.counters
    }

    async fn download(&self, path: &str, to: &Path) -> Result<u64, IncusError> {
        use tokio::io::AsyncWriteExt;
        self.counters.count(Method::Get);
        self.trace(|| format!("incus: GET {path} (download) ..."));
        let uri: hyper::Uri = Uri::new(&self.socket, path).into();
        let req = Request::builder()
            .method("GET")
            .uri(uri)
            .body(Full::new(Bytes::new()))
            .map_err(|e| IncusError::transport(format!("bad request {path}: {e}")))?;
        let resp = tokio::time::timeout(
            std::time::Duration::from_secs(REQUEST_TIMEOUT),
            self.client.request(req),
        )
        .await
        .map_err(|_| IncusError::transport(format!("GET {path}: Incus did not answer")))?
        .map_err(|e| {
            IncusError::transport(format!(
                "cannot reach Incus at {}: {e}",
                self.socket.display()
            ))
        })?;
        let status = resp.status().as_u16();
        self.trace(|| format!("incus: GET {path} -> {status}"));
        let json = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.starts_with("application/json"));
        let mut body = resp.into_body();
        if json || status != 200 {
            let bytes = body
                .collect()
                .await
                .map_err(|e| IncusError::transport(format!("GET {path}: {e}")))?
                .to_bytes();
            let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            return Err(error_of(status, &v));
        }
        let io =
            |e: std::io::Error| IncusError::transport(format!("writing {}: {e}", to.display()));
        let mut file = tokio::fs::File::create(to).await.map_err(io)?;
        let mut n = 0u64;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| IncusError::transport(format!("GET {path}: {e}")))?;
            if let Ok(data) = frame.into_data() {
                file.write_all(&data).await.map_err(io)?;
                n += data.len() as u64;
            }
        }
        file.sync_all().await.map_err(io)?;
        Ok(n)
    }

    async fn upload(
        &self,
        path: &str,
        from: &Path,
        headers: &[(&str, String)],
    ) -> Result<Reply, IncusError> {
        self.counters.count(Method::Post);
        self.trace(|| format!("incus: POST {path} (upload of {}) ...", from.display()));
        let len = std::fs::metadata(from)
            .map_err(|e| IncusError::transport(format!("reading {}: {e}", from.display())))?
            .len();
        let client: Client<UnixConnector, FileBody> = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(0)
            .build(UnixConnector);
        let uri: hyper::Uri = Uri::new(&self.socket, path).into();
        let mut req = Request::builder()
            .method("POST")
            .uri(uri)
            .header("Content-Type", "application/octet-stream")
            .header("Content-Length", len);
        for (k, v) in headers {
            req = req.header(*k, v.as_str());
        }
        let req = req
            .body(FileBody::open(from.to_path_buf()))
            .map_err(|e| IncusError::transport(format!("bad request {path}: {e}")))?;
        let resp = client.request(req).await.map_err(|e| {
            IncusError::transport(format!(
                "POST {path} to Incus at {}: {e}",
                self.socket.display()
            ))
        })?;
        let status = resp.status().as_u16();
        self.trace(|| format!("incus: POST {path} -> {status}"));
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| IncusError::transport(format!("POST {path}: reading the reply: {e}")))?
            .to_bytes();
        let json: Value = serde_json::from_slice(&bytes).map_err(|_| IncusError {
            code: status,
            message: format!(
                "POST {path}: not a JSON reply: {}",
                String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
            ),
        })?;
        match json.get("type").and_then(Value::as_str) {
            Some("sync") => Ok(Reply {
                metadata: json.get("metadata").cloned().unwrap_or(Value::Null),
                etag: None,
            }),
            Some("async") => match json.get("operation").and_then(Value::as_str) {
                Some(op) => self.wait(op).await,
                None => Err(IncusError {
                    code: status,
                    message: "async reply without an operation".into(),
                }),
            },
            _ => Err(error_of(status, &json)),
        }
    }
}

/// A request body streamed from a file, read in 1 MiB chunks by a task of
/// its own (a backup can be far larger than memory should hold).
struct FileBody {
    rx: tokio::sync::mpsc::Receiver<std::io::Result<Bytes>>,
}

impl FileBody {
    fn open(path: PathBuf) -> FileBody {
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tokio::spawn(async move {
            use tokio::io::AsyncReadExt;
            let mut file = match tokio::fs::File::open(&path).await {
                Ok(f) => f,
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            };
            loop {
                let mut buf = vec![0u8; 1 << 20];
                match file.read(&mut buf).await {
                    Ok(0) => return,
                    Ok(n) => {
                        buf.truncate(n);
                        if tx.send(Ok(Bytes::from(buf))).await.is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                }
            }
        });
        FileBody { rx }
    }
}

impl hyper::body::Body for FileBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, std::io::Error>>> {
        self.rx
            .poll_recv(cx)
            .map(|o| o.map(|r| r.map(hyper::body::Frame::data)))
    }
}

fn error_of(status: u16, json: &Value) -> IncusError {
    let code = json
        .get("error_code")
        .and_then(Value::as_u64)
        .filter(|c| *c != 0)
        .unwrap_or(status as u64) as u16;
    let message = json
        .get("error")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .unwrap_or("unknown error")
        .to_string();
    IncusError { code, message }
}

/// A finished operation: success (200) or its error.
fn check_operation(md: Value) -> Result<Reply, IncusError> {
    match md.get("status_code").and_then(Value::as_u64) {
        Some(200) => Ok(Reply {
            metadata: md.get("metadata").cloned().unwrap_or(Value::Null),
            etag: None,
        }),
        code => Err(IncusError {
            code: code.unwrap_or(500) as u16,
            message: md
                .get("err")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .unwrap_or("operation failed")
                .to_string(),
        }),
    }
}
