//! One-off job containers (builds, image provisioning) through the runner's library API.

use std::os::fd::OwnedFd;
use std::path::PathBuf;

use vr::host::container::plan::{Bind, StdioPlan};
use vr::model::proc_data::Artifact;
use vr::services::runner::job::{JobRoot, JobSpec};
use vr::services::runner::layout::Layout;
use vr::services::runner::{CallerStdio, Runner};

use crate::harness::busybox_image;
use crate::require_root;

struct Fixture {
    dir: tempfile::TempDir,
    runner: Runner,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::Builder::new().prefix("vrd-job-").tempdir().unwrap();
        let parent = format!("vrd-test-job-{}", std::process::id());
        let runner = Runner {
            layout: Layout { data_dir: dir.path().join("data") },
            exe: PathBuf::from(env!("CARGO_BIN_EXE_vrd")),
            cgroup_root: "/sys/fs/cgroup".into(),
            cgroup_parent: format!(
                "{parent}-{}",
                dir.path().file_name().unwrap().to_string_lossy().replace('.', "_")
            ),
            locks: Default::default(),
            uptest_timeout: std::time::Duration::from_secs(60),
            spawner: None,
            limits: Default::default(),
            network: Default::default(),
        };
        Fixture { dir, runner }
    }

    fn image(&self) -> Artifact {
        Artifact { url: format!("file://{}", busybox_image().display()), md5: None, name: "busybox".into() }
    }

    /// stdio whose stdout and stderr go to `out`.
    fn stdio(&self, out: &std::fs::File) -> CallerStdio {
        let null = std::fs::File::open("/dev/null").unwrap();
        CallerStdio {
            stdin: OwnedFd::from(null),
            stdout: OwnedFd::from(out.try_clone().unwrap()),
            stderr: OwnedFd::from(out.try_clone().unwrap()),
        }
    }

    fn job(&self, root: JobRoot, argv: &[&str]) -> JobSpec {
        JobSpec {
            name: "job-test".into(),
            image: Some(self.image()),
            root,
            volumes: Vec::new(),
            user: "app".into(),
            group: "app".into(),
            argv: argv.iter().map(|s| s.to_string()).collect(),
            env: vec![("PATH".into(), "/bin:/usr/bin".into())],
            cwd: "/".into(),
            limits: Default::default(),
            stdio: StdioPlan::Pipes { log: None },
        }
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        for h in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
            let _ = std::fs::remove_dir(h.path().join(&self.runner.cgroup_parent));
        }
    }
}

#[test]
fn a_layered_job_sees_its_extra_layer_and_writes_only_its_volume() {
    require_root!("a_layered_job_sees_its_extra_layer_and_writes_only_its_volume");
    let f = Fixture::new();
    let layer = f.dir.path().join("layer");
    std::fs::create_dir_all(layer.join("tools")).unwrap();
    std::fs::write(
        layer.join("tools/hello.sh"),
        "echo hello from the layer; id -u; echo made > /out/result\n",
    )
    .unwrap();
    let out_dir = f.dir.path().join("out");
    std::fs::create_dir_all(&out_dir).unwrap();
    std::os::unix::fs::chown(&out_dir, Some(1000), Some(1000)).unwrap();
    let mut job = f.job(JobRoot::Layers(vec![layer]), &["/bin/sh", "/tools/hello.sh"]);
    job.volumes.push(Bind { outside: out_dir.clone(), inside: "/out".into(), read_only: false });
    let log = f.dir.path().join("log");
    let file = std::fs::File::create(&log).unwrap();
    let status = f.runner.run_job(&job, f.stdio(&file)).unwrap();
    assert_eq!(status.code, 0, "{status:?} {}", std::fs::read_to_string(&log).unwrap());
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "hello from the layer\n1000\n",
        "raw output, as the user app"
    );
    assert_eq!(std::fs::read_to_string(out_dir.join("result")).unwrap(), "made\n");
}

#[test]
fn a_dir_rooted_job_writes_its_root_in_place() {
    require_root!("a_dir_rooted_job_writes_its_root_in_place");
    let f = Fixture::new();
    let contents = f.runner.prepare_image_artifact(&f.image()).unwrap();
    let root = f.dir.path().join("img");
    let status = std::process::Command::new("cp").arg("-a").arg(&contents).arg(&root).status().unwrap();
    assert!(status.success());
    let mut job = f
        .job(JobRoot::Dir(root.clone()), &["/bin/sh", "-c", "echo installed > /etc/provisioned; rm /bin/vi"]);
    job.user = "root".into();
    job.group = "root".into();
    let log = std::fs::File::create(f.dir.path().join("log")).unwrap();
    let status = f.runner.run_job(&job, f.stdio(&log)).unwrap();
    assert_eq!(status.code, 0, "{status:?}");
    assert_eq!(std::fs::read_to_string(root.join("etc/provisioned")).unwrap(), "installed\n");
    assert!(
        std::fs::symlink_metadata(root.join("bin/vi")).is_err(),
        "a deletion is a real deletion, no whiteout"
    );
    assert!(contents.join("bin/vi").exists(), "the shared image is untouched");
}
