//! Real proxies for tests, each on loopback ports with its config in a temp dir and stopped on
//! drop: a private nginx, varnishd and haproxy (never the system ones), and [`Frontend`], which
//! puts any balancer kind (the builtin router included) behind one interface: the running proxy,
//! the `[balancers.NAME]` settings that make vrd use it, the pool it serves and the port it serves
//! that pool on.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use vr::model::balancer::{BalancerConfig, BuiltinConfig, HaproxyConfig, NginxConfig, VarnishConfig};

use crate::harness::{free_port, skip, wait_for_port};

pub fn installed(program: &str) -> bool {
    Command::new(program).arg("-V").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok()
}

/// A process started for a test, stopped (SIGTERM, then SIGKILL) and reaped on drop.
pub struct Daemon(pub Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.0.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A temp dir the proxies' unprivileged workers (nobody, vcache) can traverse.
pub fn shared_tempdir(prefix: &str) -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::Builder::new().prefix(prefix).tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

// ---- nginx ----

/// A private nginx: `web` is proxied through a variable (so the pool may be absent), `api` is
/// named directly (so nginx -t refuses a config without it).
pub struct TestNginx {
    /// First, so it is stopped before its dir goes (fields drop in order).
    _nginx: Daemon,
    pub dir: tempfile::TempDir,
    pub web_port: u16,
    pub api_port: u16,
}

impl TestNginx {
    fn base_args(&self) -> Vec<String> {
        let dir = self.dir.path().display().to_string();
        ["nginx", "-p", &dir, "-c", &format!("{dir}/nginx.conf"), "-e", &format!("{dir}/error.log")]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    pub fn pools(&self) -> PathBuf {
        self.dir.path().join("pools")
    }

    pub fn config(&self) -> NginxConfig {
        let mut test_cmd = self.base_args();
        test_cmd.push("-t".into());
        let mut reload_cmd = self.base_args();
        reload_cmd.extend(["-s".to_string(), "reload".to_string()]);
        NginxConfig {
            include_dir: self.pools(),
            test_cmd,
            reload_cmd,
            pid_file: self.dir.path().join("nginx.pid"),
        }
    }

    pub fn start(api_node: &str) -> TestNginx {
        let dir = shared_tempdir("vr-nginx-");
        let d = dir.path().display().to_string();
        let (web_port, api_port) = (free_port(), free_port());
        std::fs::create_dir(dir.path().join("pools")).unwrap();
        // api's file as VR wrote it, so vr must read VR's files.
        std::fs::write(
            dir.path().join("pools/api.conf"),
            format!("\nupstream api {{\n  server {api_node};\n}}\n"),
        )
        .unwrap();
        let conf = format!(
            "pid {d}/nginx.pid;\nevents {{ worker_connections 64; }}\nhttp {{\n  access_log off;\n  \
             include {d}/pools/*.conf;\n  \
             server {{ listen 127.0.0.1:{web_port}; location / {{ set $pool web; proxy_pass http://$pool; }} }}\n  \
             server {{ listen 127.0.0.1:{api_port}; location / {{ proxy_pass http://api; }} }}\n}}\n"
        );
        std::fs::write(dir.path().join("nginx.conf"), conf).unwrap();
        let args = vec!["-p".to_string(), d.clone(), "-c".into(), format!("{d}/nginx.conf")];
        let child = Command::new("nginx")
            .args(&args)
            .args(["-e", &format!("{d}/error.log"), "-g", "daemon off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let nginx = TestNginx { dir, web_port, api_port, _nginx: Daemon(child) };
        assert!(wait_for_port(api_port, Duration::from_secs(10)), "nginx did not start: {}", d);
        nginx
    }
}

// ---- varnish ----

/// A private varnishd booted on a VCL without pools; the balancer loads `main.vcl`, which routes
/// every request to the `web` director.
pub struct TestVarnish {
    /// First, so it is stopped before its dir goes (fields drop in order).
    _varnishd: Daemon,
    pub dir: tempfile::TempDir,
    pub port: u16,
}

impl TestVarnish {
    pub fn include_dir(&self) -> PathBuf {
        self.dir.path().join("vcl")
    }

    pub fn config(&self) -> VarnishConfig {
        let workdir = self.dir.path().join("n").display().to_string();
        VarnishConfig {
            include_dir: self.include_dir(),
            main_vcl: self.dir.path().join("main.vcl"),
            admin_cmd: vec!["varnishadm".into(), "-n".into(), workdir],
            ..VarnishConfig::default()
        }
    }

    pub fn start() -> TestVarnish {
        let dir = shared_tempdir("vr-varnish-");
        let d = dir.path().display().to_string();
        std::fs::create_dir(dir.path().join("vcl")).unwrap();
        std::fs::write(dir.path().join("boot.vcl"), "vcl 4.1;\nbackend default none;\n").unwrap();
        let main = format!(
            "vcl 4.1;\nimport directors;\nbackend default none;\ninclude \"{d}/vcl/pools.vcl\";\n\
             sub vcl_recv {{ set req.backend_hint = web.backend(); return (pass); }}\n"
        );
        std::fs::write(dir.path().join("main.vcl"), main).unwrap();
        let port = free_port();
        let child = Command::new("varnishd")
            .args(["-F", "-n", &format!("{d}/n"), "-a", &format!("127.0.0.1:{port}")])
            .args(["-f", &format!("{d}/boot.vcl"), "-s", "malloc,16m"])
            .stdout(std::fs::File::create(dir.path().join("varnishd.log")).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let varnish = TestVarnish { dir, port, _varnishd: Daemon(child) };
        assert!(wait_for_port(port, Duration::from_secs(20)), "varnishd did not start in {d}");
        varnish
    }

    /// Checks that vr left one VCL of its own in use: every older one is discarded (varnish frees
    /// a discarded VCL once no worker thread holds it any more, which may take a while).
    pub fn assert_older_vcls_discarded(&self) {
        let listed = self.vr_vcls();
        let status = |l: &String| l.split_whitespace().next().unwrap_or_default().to_string();
        let active = listed.iter().filter(|l| status(l) == "active").count();
        let others: Vec<_> =
            listed.iter().filter(|l| !["active", "discarded"].contains(&status(l).as_str())).collect();
        assert!(active == 1 && others.is_empty(), "vcl.list: {listed:?}");
    }

    /// `vcl.list`'s lines for the VCLs vr loaded.
    pub fn vr_vcls(&self) -> Vec<String> {
        let out =
            Command::new("varnishadm").args(&self.config().admin_cmd[1..]).arg("vcl.list").output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.lines().filter(|l| l.contains(" vr-")).map(String::from).collect()
    }
}

// ---- haproxy ----

/// A haproxy master (`-W`) in the foreground on its own temp dir; stopped on drop.
pub struct RealHaproxy {
    pub dir: tempfile::TempDir,
    child: Child,
    /// `frontend web`: serves the user's own backend `vr_hello`.
    pub web: u16,
    /// `frontend fresh`: serves `vr_fresh`, a backend only vr writes.
    pub fresh: u16,
}

impl RealHaproxy {
    /// Starts haproxy, or skips the test when there is none.
    pub fn start(test: &str) -> Option<RealHaproxy> {
        if Command::new("haproxy").arg("-v").output().is_err() {
            skip(test, "haproxy is not installed (apt-get install haproxy)");
            return None;
        }
        let dir = tempfile::Builder::new().prefix("vr-haproxy-").tempdir().unwrap();
        let (web, fresh) = (free_port(), free_port());
        let cfg = format!(
            "global\n    stats socket {}/admin.sock level admin\n\n\
             defaults\n    mode http\n    timeout connect 1s\n    timeout client 10s\n    timeout server 10s\n\n\
             frontend web\n    bind 127.0.0.1:{web}\n    default_backend vr_hello\n\n\
             frontend fresh\n    bind 127.0.0.1:{fresh}\n    use_backend %[str(vr_fresh)]\n\n\
             backend vr_hello\n    balance roundrobin\n\n\
             backend vr_static\n    balance static-rr\n",
            dir.path().display()
        );
        std::fs::write(dir.path().join("haproxy.cfg"), cfg).unwrap();
        let child = RealHaproxy::spawn(dir.path());
        let haproxy = RealHaproxy { dir, child, web, fresh };
        haproxy.wait_ready();
        Some(haproxy)
    }

    fn spawn(dir: &std::path::Path) -> Child {
        let log =
            std::fs::OpenOptions::new().create(true).append(true).open(dir.join("haproxy.log")).unwrap();
        Command::new("haproxy")
            .args(["-W", "-f"])
            .arg(dir.join("haproxy.cfg"))
            .arg("-p")
            .arg(dir.join("haproxy.pid"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap()
    }

    pub fn cfg_path(&self) -> PathBuf {
        self.dir.path().join("haproxy.cfg")
    }

    pub fn cfg_text(&self) -> String {
        std::fs::read_to_string(self.cfg_path()).unwrap()
    }

    /// The balancer's settings for this haproxy: reloads go to the master named in the pid file.
    pub fn config(&self) -> HaproxyConfig {
        let pid = self.dir.path().join("haproxy.pid");
        HaproxyConfig {
            admin_socket: self.dir.path().join("admin.sock"),
            config_file: self.cfg_path(),
            backend_prefix: "vr_".into(),
            reload_cmd: vec!["sh".into(), "-c".into(), format!("kill -USR2 $(cat {})", pid.display())],
            drain_secs: 10,
        }
    }

    /// One runtime API command, answered to EOF (empty when the socket is not there).
    pub fn cli(&self, command: &str) -> String {
        let Ok(mut s) = std::os::unix::net::UnixStream::connect(self.dir.path().join("admin.sock")) else {
            return String::new();
        };
        writeln!(s, "{command}").unwrap();
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        answer
    }

    /// The pid of the worker answering the runtime API; a reload replaces it.
    pub fn worker_pid(&self) -> String {
        let info = self.cli("show info");
        info.lines().find(|l| l.starts_with("Pid:")).unwrap_or_default().to_string()
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.worker_pid().is_empty() {
            let log = std::fs::read_to_string(self.dir.path().join("haproxy.log")).unwrap_or_default();
            assert!(Instant::now() < deadline, "haproxy did not start: {log}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.child.try_wait().unwrap().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill(); // the workers leave when their master is gone
        let _ = self.child.wait();
    }

    /// Stops haproxy and starts it again from its config file, as a host reboot would.
    pub fn restart(&mut self) {
        self.stop();
        let _ = std::fs::remove_file(self.dir.path().join("admin.sock"));
        self.child = RealHaproxy::spawn(self.dir.path());
        self.wait_ready();
    }
}

impl Drop for RealHaproxy {
    fn drop(&mut self) {
        self.stop();
    }
}

// ---- any balancer kind, behind one interface ----

/// The balancer kinds that serve real traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Builtin,
    Nginx,
    Haproxy,
    Varnish,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Builtin, Kind::Nginx, Kind::Haproxy, Kind::Varnish];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Builtin => "builtin",
            Kind::Nginx => "nginx",
            Kind::Haproxy => "haproxy",
            Kind::Varnish => "varnish",
        }
    }
}

/// What keeps a frontend's proxy running; the builtin router runs inside vrd.
enum Proxy {
    InsideVrd,
    Nginx(TestNginx),
    Varnish(TestVarnish),
    Haproxy(RealHaproxy),
}

/// A balancer ready for vr: its running proxy (stopped on drop), the settings of
/// `[balancers.<name>]`, the pool vr routes and the loopback port the pool is served on.
pub struct Frontend {
    pub kind: Kind,
    pub config: BalancerConfig,
    pub pool: &'static str,
    pub port: u16,
    proxy: Proxy,
}

impl Frontend {
    /// Starts the proxy of `kind`, or skips `test` (returning `None`) when it is not installed.
    pub fn start(kind: Kind, test: &str) -> Option<Frontend> {
        let program = match kind {
            Kind::Builtin => None,
            Kind::Nginx => Some("nginx"),
            Kind::Haproxy => Some("haproxy"),
            Kind::Varnish => Some("varnishd"),
        };
        if let Some(program) = program.filter(|p| !installed(p)) {
            skip(test, &format!("{program} is not installed (apt-get install {})", kind.name()));
            return None;
        }
        Some(match kind {
            Kind::Builtin => {
                let port = free_port();
                let pools = BTreeMap::from([("web".to_string(), format!("127.0.0.1:{port}"))]);
                let config = BalancerConfig::Builtin(BuiltinConfig { pools, ..BuiltinConfig::default() });
                Frontend { kind, config, pool: "web", port, proxy: Proxy::InsideVrd }
            }
            Kind::Nginx => {
                // `api` needs a file for nginx -t; nothing sends it traffic here.
                let nginx = TestNginx::start("127.0.0.1:9");
                let config = BalancerConfig::Nginx(nginx.config());
                Frontend { kind, config, pool: "web", port: nginx.web_port, proxy: Proxy::Nginx(nginx) }
            }
            Kind::Varnish => {
                let varnish = TestVarnish::start();
                let config = BalancerConfig::Varnish(varnish.config());
                Frontend { kind, config, pool: "web", port: varnish.port, proxy: Proxy::Varnish(varnish) }
            }
            Kind::Haproxy => {
                let haproxy = RealHaproxy::start(test)?;
                let config = BalancerConfig::Haproxy(haproxy.config());
                Frontend { kind, config, pool: "hello", port: haproxy.web, proxy: Proxy::Haproxy(haproxy) }
            }
        })
    }

    /// The balancer's name in vrd's config: its kind.
    pub fn name(&self) -> &'static str {
        self.kind.name()
    }

    /// vrd's config for this balancer: its `[balancers.<name>]` table, in TOML.
    pub fn vrd_toml(&self) -> String {
        #[derive(serde::Serialize)]
        struct Tables<'a> {
            balancers: BTreeMap<&'a str, &'a BalancerConfig>,
        }
        toml::to_string(&Tables { balancers: BTreeMap::from([(self.name(), &self.config)]) }).unwrap()
    }

    /// The proxy's own log, for failure messages (empty for the builtin router, which logs to vrd.log).
    pub fn log(&self) -> String {
        let file = match &self.proxy {
            Proxy::InsideVrd => return String::new(),
            Proxy::Nginx(n) => n.dir.path().join("error.log"),
            Proxy::Varnish(v) => v.dir.path().join("varnishd.log"),
            Proxy::Haproxy(h) => h.dir.path().join("haproxy.log"),
        };
        std::fs::read_to_string(file).unwrap_or_default()
    }
}
