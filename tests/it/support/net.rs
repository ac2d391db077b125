//! Loopback ports for the servers the tests start: a free one to hand out, whether one is
//! listening yet (asked of the kernel), binding one again after a restart — and the serving
//! loop of the fake HTTP receivers (Splunk HEC, Azure Monitor, Elasticsearch) that can go down
//! and come back.

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::wait::{PATIENCE, wait_until};

/// Serves HTTP/1 on `listener`, each request answered by `handle(state, request)`, until `token`
/// is cancelled — which also closes every open connection, as a receiver going down would.
pub fn serve_http<S, F, Fut>(listener: TcpListener, token: CancellationToken, state: S, handle: F)
where
    S: Clone + Send + Sync + 'static,
    F: Fn(S, Request<Incoming>) -> Fut + Copy + Send + Sync + 'static,
    Fut: Future<Output = Result<Response<Full<Bytes>>, hyper::Error>> + Send + 'static,
{
    tokio::spawn(async move {
        loop {
            let stream = tokio::select! {
                _ = token.cancelled() => return,
                r = listener.accept() => match r { Ok((s, _)) => s, Err(_) => continue },
            };
            let (state, token) = (state.clone(), token.clone());
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| handle(state.clone(), req));
                let conn = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc);
                tokio::select! {
                    _ = token.cancelled() => {}
                    _ = conn => {}
                }
            });
        }
    });
}

/// A loopback port free at the time of asking, for a server the test starts next — and never
/// one this process handed out before: the kernel may give a just-released port to the next
/// `bind(0)`, and two servers started by parallel tests then met on one port (CI once had
/// Azurite's test talking to moto).
pub fn free_port(udp: bool) -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    loop {
        let port = if udp {
            std::net::UdpSocket::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        } else {
            std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        };
        let mut given = GIVEN.lock().unwrap_or_else(|p| p.into_inner());
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// Binds `addr` once the previous holder of the port has let go of it.
pub async fn bind_again(addr: std::net::SocketAddr) -> tokio::net::TcpListener {
    wait_until(
        &format!("{addr} free to bind again"),
        PATIENCE,
        async || tokio::net::TcpListener::bind(addr).await.ok(),
    )
    .await
}

/// Whether something on this host listens on 127.0.0.1:`port` (TCP) or has bound it (UDP),
/// read from `/proc/net`: it asks the kernel, not the server, so no probe reaches the server.
pub fn listening(port: u16, udp: bool) -> bool {
    let (file, state) = if udp {
        ("/proc/net/udp", "07")
    } else {
        ("/proc/net/tcp", "0A")
    };
    let want = format!("0100007F:{port:04X}");
    std::fs::read_to_string(file).is_ok_and(|text| {
        text.lines().skip(1).any(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            cols.get(1) == Some(&want.as_str()) && cols.get(3) == Some(&state)
        })
    })
}
