//! Network faults between the server and its database, for tests and `make faults`: a TCP
//! proxy that can refuse connections ([`Proxy::cut`]) or hold every byte
//! ([`Proxy::stall`]), and `telnyx-sim proxy`, the same proxy as a process driven by
//! signals.

/// A TCP proxy in front of a database, to take it "down" and bring it back in tests without
/// stopping the real server: [`Proxy::cut`] refuses new connections and drops open ones;
/// [`Proxy::stall`] keeps every connection open but moves no byte (a database that hangs
/// instead of failing) until [`Proxy::resume`].
#[derive(Debug)]
pub struct Proxy {
    /// The port to connect to instead of the target's.
    pub port: u16,
    up: std::sync::Arc<std::sync::atomic::AtomicBool>,
    generation: tokio::sync::watch::Sender<u64>,
    stalled: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

/// Copies `from` to `to`, holding every byte while `stalled` says so.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut stalled: tokio::sync::watch::Receiver<bool>,
) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let Ok(n) = from.read(&mut buf).await else {
            return;
        };
        if n == 0 || stalled.wait_for(|s| !*s).await.is_err() {
            return;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

impl Proxy {
    /// Starts forwarding `127.0.0.1:<random port>` to `target` (`host:port`).
    ///
    /// # Errors
    /// When no loopback port can be bound.
    pub async fn start(target: String) -> std::io::Result<Self> {
        Self::listen("127.0.0.1:0", target).await
    }

    /// Starts forwarding `listen` to `target`.
    ///
    /// # Errors
    /// When `listen` cannot be bound.
    pub async fn listen(listen: &str, target: String) -> std::io::Result<Self> {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind(listen).await?;
        let port = listener.local_addr()?.port();
        let up = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let (generation, _) = tokio::sync::watch::channel(0u64);
        let (stalled, _) = tokio::sync::watch::channel(false);
        let (up2, gen_tx, stall_tx) = (up.clone(), generation.clone(), stalled.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((inbound, _)) = listener.accept().await else {
                    continue;
                };
                if !up2.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let target = target.clone();
                let mut cut = gen_tx.subscribe();
                let (up_stall, down_stall) = (stall_tx.subscribe(), stall_tx.subscribe());
                tokio::spawn(async move {
                    let Ok(outbound) = tokio::net::TcpStream::connect(target).await else {
                        return;
                    };
                    let (client_read, client_write) = inbound.into_split();
                    let (server_read, server_write) = outbound.into_split();
                    tokio::select! {
                        () = pump(client_read, server_write, up_stall) => {}
                        () = pump(server_read, client_write, down_stall) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        Ok(Self {
            port,
            up,
            generation,
            stalled,
            task,
        })
    }

    /// The database is unreachable: open connections drop, new ones are refused.
    pub fn cut(&self) {
        self.up.store(false, std::sync::atomic::Ordering::SeqCst);
        self.generation.send_modify(|g| *g += 1);
    }

    /// The database is back.
    pub fn restore(&self) {
        self.up.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// The database hangs: connections stay open (new ones too) but no byte moves.
    pub fn stall(&self) {
        self.stalled.send_replace(true);
    }

    /// The database answers again: held bytes flow on.
    pub fn resume(&self) {
        self.stalled.send_replace(false);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Runs a proxy from `listen` to `target` until interrupted: SIGUSR1 toggles a stall,
/// SIGUSR2 toggles a cut (each change is printed on stderr).
///
/// # Errors
/// When the address cannot be bound or the signals cannot be handled.
#[cfg(unix)]
pub async fn serve(listen: &str, target: &str) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let proxy = Proxy::listen(listen, target.to_owned()).await?;
    let (mut usr1, mut usr2) = (
        signal(SignalKind::user_defined1())?,
        signal(SignalKind::user_defined2())?,
    );
    let mut term = signal(SignalKind::terminate())?;
    let (mut stalled, mut cut) = (false, false);
    eprintln!("proxy: 127.0.0.1:{} -> {target}", proxy.port);
    loop {
        tokio::select! {
            _ = usr1.recv() => {
                stalled = !stalled;
                if stalled { proxy.stall() } else { proxy.resume() }
                eprintln!("proxy: {}", if stalled { "stalled" } else { "flowing" });
            }
            _ = usr2.recv() => {
                cut = !cut;
                if cut { proxy.cut() } else { proxy.restore() }
                eprintln!("proxy: {}", if cut { "cut" } else { "restored" });
            }
            _ = tokio::signal::ctrl_c() => return Ok(()),
            _ = term.recv() => return Ok(()),
        }
    }
}
