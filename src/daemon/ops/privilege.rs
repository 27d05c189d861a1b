//! What only an admin may ask for, checked on the request itself after the access table let the
//! call through (see ARCHITECTURE.md "Who may do what"). vrd acts as root, so without these checks
//! a member of the socket's group could have root do what they could not do themselves: mount
//! /etc into a container, run a container as uid 0, or have vrd read a root-only file as an image,
//! a repository or a provisioning script. An admin (root, or the admins group) may do all of it.

use std::path::{Component, Path};

use super::access::{Policy, Principal};
use super::error::{error, OpResult};
use crate::api::{codes, Kind};
use crate::host::perms::{self, Ids};
use crate::model::build_data::BuildData;
use crate::model::deploy::Definition;
use crate::model::image_data::ImageData;
use crate::model::proc_data::{ProcSpec, Seccomp};

/// Checks a request of `who` under `policy`; what an admin asks is never refused here.
pub struct Privilege<'a> {
    who: &'a Principal,
    policy: &'a Policy,
}

impl<'a> Privilege<'a> {
    /// The checks for `who`.
    pub fn of(who: &'a Principal, policy: &'a Policy) -> Privilege<'a> {
        Privilege { who, policy }
    }

    /// A proc.yaml's run-as user and group, volumes, and local image and build archives.
    pub fn proc(&self, spec: &ProcSpec) -> OpResult<()> {
        if self.who.is_admin() {
            return Ok(());
        }
        self.not_root("user", &spec.user)?;
        self.not_root("group", &spec.group)?;
        if spec.seccomp == Seccomp::Unconfined {
            return Err(admin_only("seccomp: unconfined (a container without vr's seccomp filter)".into()));
        }
        for v in &spec.volumes {
            self.volume(&v.outside)?;
        }
        self.local("image", &spec.image.url)?;
        if let Some(build) = &spec.build {
            self.local("build", &build.url)?;
        }
        Ok(())
    }

    /// A definition: hosts are admin business; a swarm's volumes and run-as user; the local paths
    /// of apps, buildpacks and stacks (vrd reads them at every build).
    pub fn definition(&self, def: &Definition) -> OpResult<()> {
        if self.who.is_admin() {
            return Ok(());
        }
        match def {
            Definition::Host(h) => Err(admin_only(format!("defining host '{}'", h.name))),
            Definition::Swarm(s) => {
                self.not_root("run_as", &s.run_as)?;
                if s.seccomp == Seccomp::Unconfined {
                    return Err(admin_only(format!("swarm '{}' with seccomp: unconfined", s.display_name())));
                }
                s.volumes.iter().filter_map(|v| v.first()).try_for_each(|outside| self.volume(outside))
            }
            Definition::App(a) => {
                self.local("repo_url", &a.repo_url)?;
                a.buildpack.iter().try_for_each(|url| self.local("buildpack", url))
            }
            Definition::Buildpack(b) => self.local("repo_url", &b.repo_url),
            Definition::Stack(s) => {
                self.local("base_image_url", &s.base_image_url)?;
                s.provisioning_script.iter().try_for_each(|url| self.local("provisioning_script", url))
            }
            Definition::Squad(_) | Definition::Ingredient(_) => Ok(()),
        }
    }

    /// Deleting a definition: hosts (which revokes their certificates) are admin business.
    pub fn deletion(&self, kind: Kind, name: &str) -> OpResult<()> {
        if kind == Kind::Host && !self.who.is_admin() {
            return Err(admin_only(format!("deleting host '{name}'")));
        }
        Ok(())
    }

    /// A build.yaml's repository, buildpacks and stack image.
    pub fn build(&self, data: &BuildData) -> OpResult<()> {
        if self.who.is_admin() {
            return Ok(());
        }
        self.local("app_repo_url", &data.app_repo_url)?;
        for pack in data.buildpacks() {
            self.local("buildpack_url", &pack.url)?;
        }
        self.local("image_url", &data.image_url)
    }

    /// An image.yaml's base image and provisioning script (relative paths already resolved).
    pub fn image(&self, data: &ImageData) -> OpResult<()> {
        if self.who.is_admin() {
            return Ok(());
        }
        self.local("base_image_url", &data.base_image_url)?;
        self.local("script_url", &data.script_url)
    }

    /// uid or gid 0 by name or number: only an admin may ask for it. (An image that maps another
    /// name to 0 is refused for everyone at setup, so the name is what decides.)
    fn not_root(&self, key: &str, name: &str) -> OpResult<()> {
        let numeric_zero = !name.is_empty() && name.bytes().all(|b| b == b'0');
        if name == "root" || numeric_zero {
            return Err(admin_only(format!("{key} '{name}' (running as root)")));
        }
        Ok(())
    }

    /// A volume's host path must lie under one of the configured prefixes.
    fn volume(&self, outside: &str) -> OpResult<()> {
        let path = Path::new(outside);
        let plain = path.components().all(|c| matches!(c, Component::RootDir | Component::Normal(_)));
        let allowed = plain && self.policy.volume_prefixes.iter().any(|prefix| path.starts_with(prefix));
        if allowed {
            return Ok(());
        }
        let prefixes = if self.policy.volume_prefixes.is_empty() {
            "none are configured".to_string()
        } else {
            self.policy.volume_prefixes.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
        };
        Err(admin_only(format!(
            "a volume from '{outside}', outside the host directories members may mount ({prefixes}; vrd's \
             config key volume_prefixes)"
        )))
    }

    /// A local path (absolute, or a file:// URL) the caller must be able to read themselves.
    fn local(&self, key: &str, url: &str) -> OpResult<()> {
        let path = match url.strip_prefix("file://") {
            Some(rest) => rest,
            None if url.starts_with('/') => url,
            None => return Ok(()), // http(s), or a remote repository: vrd reads nothing local
        };
        let path = path.split('#').next().unwrap_or(path); // a #rev fragment pins a revision
        let ids = Ids { uid: self.who.uid, gids: self.gids() };
        perms::check_readable(Path::new(path), &ids).map_err(|why| {
            error(
                codes::DENIED,
                format!(
                    "{key} '{url}': {why}; vrd reads local paths for a member only when the member could \
                     read them too (make it readable, or ask an admin)"
                ),
            )
        })
    }

    fn gids(&self) -> Vec<u32> {
        let mut gids = vec![self.who.gid];
        gids.extend(self.who.groups.iter().copied());
        gids
    }
}

impl super::Ops {
    /// Runs `check` of [`Privilege`] on `subject` for `who` (on a blocking thread: it may walk a
    /// repository's files) and hands the subject back when it passes; admins pass at once.
    pub(super) async fn permit<T: Send + 'static>(
        &self,
        who: &Principal,
        subject: T,
        check: fn(&Privilege<'_>, &T) -> OpResult<()>,
    ) -> OpResult<T> {
        if who.is_admin() {
            return Ok(subject);
        }
        let (who, policy) = (who.clone(), self.daemon.policy.clone());
        tokio::task::spawn_blocking(move || check(&Privilege::of(&who, &policy), &subject).map(|()| subject))
            .await
            .map_err(super::error::task_failed)?
    }
}

fn admin_only(what: String) -> crate::api::ApiError {
    error(
        codes::DENIED,
        format!(
            "{what} needs an admin: root or a member of vrd's admins group (config key admins_gid); \
             see README \"Who may do what\""
        ),
    )
}

#[cfg(test)]
mod tests;
