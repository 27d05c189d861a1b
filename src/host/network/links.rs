//! The few link, address and route changes a private network needs, over rtnetlink. Each
//! [`Netlink`] talks to the network namespace its thread was in when it was opened.

use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsRawFd, BorrowedFd};

use futures::TryStreamExt;
use rtnetlink::{Handle, LinkBridge, LinkBridgePort, LinkUnspec, LinkVeth, RouteMessageBuilder};
use tokio::runtime::Runtime;

/// A netlink connection bound to the current thread's network namespace, driven by `rt`.
pub struct Netlink<'a> {
    rt: &'a Runtime,
    handle: Handle,
}

/// The errno of a netlink failure, to tell "exists" and "no such device" from real failures.
fn errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(m) => Some(m.raw_code().abs()),
        _ => None,
    }
}

fn failed(what: &str, e: rtnetlink::Error) -> String {
    match e {
        rtnetlink::Error::NetlinkError(m) => format!("failed to {what}: {}", m.to_io()),
        other => format!("failed to {what}: {other}"),
    }
}

impl<'a> Netlink<'a> {
    /// Opens a connection in the current thread's network namespace.
    pub fn open(rt: &'a Runtime) -> Result<Netlink<'a>, String> {
        let _entered = rt.enter();
        let (connection, handle, _) =
            rtnetlink::new_connection().map_err(|e| format!("failed to open a netlink socket: {e}"))?;
        rt.spawn(connection);
        Ok(Netlink { rt, handle })
    }

    /// The index of the interface `name`, if there is one.
    pub fn index_of(&self, name: &str) -> Result<Option<u32>, String> {
        let found = self.rt.block_on(async {
            let mut links = self.handle.link().get().match_name(name.to_string()).execute();
            links.try_next().await
        });
        match found {
            Ok(link) => Ok(link.map(|l| l.header.index)),
            Err(e) if errno(&e) == Some(ENODEV) => Ok(None),
            Err(e) => Err(failed(&format!("look up interface {name}"), e)),
        }
    }

    fn must_index(&self, name: &str) -> Result<u32, String> {
        self.index_of(name)?.ok_or_else(|| format!("interface {name} vanished while vrd set it up"))
    }

    /// Makes the bridge `name` with `address/prefix` and brings it up; an existing one is kept
    /// (and given the address if it lacks it).
    pub fn ensure_bridge(&self, name: &str, address: Ipv4Addr, prefix: u8) -> Result<u32, String> {
        if self.index_of(name)?.is_none() {
            let add = self.rt.block_on(self.handle.link().add(LinkBridge::new(name).up().build()).execute());
            match add {
                Err(e) if errno(&e) != Some(EEXIST) => {
                    return Err(failed(&format!("create bridge {name}"), e))
                }
                _ => {}
            }
        }
        let index = self.must_index(name)?;
        self.add_address(index, address, prefix, name)?;
        self.up(index, name)?;
        Ok(index)
    }

    /// Adds `address/prefix` to interface `index`; already there is fine.
    pub fn add_address(&self, index: u32, address: Ipv4Addr, prefix: u8, name: &str) -> Result<(), String> {
        let add = self.handle.address().add(index, IpAddr::V4(address), prefix).execute();
        match self.rt.block_on(add) {
            Err(e) if errno(&e) != Some(EEXIST) => {
                Err(failed(&format!("add {address}/{prefix} to {name}"), e))
            }
            _ => Ok(()),
        }
    }

    /// Brings interface `index` up.
    pub fn up(&self, index: u32, name: &str) -> Result<(), String> {
        let set = self.handle.link().set(LinkUnspec::new_with_index(index).up().build()).execute();
        self.rt.block_on(set).map_err(|e| failed(&format!("bring {name} up"), e))
    }

    /// Removes interface `name` if it exists (a veth left by a set-up that died halfway).
    pub fn remove(&self, name: &str) -> Result<(), String> {
        match self.index_of(name)? {
            None => Ok(()),
            Some(index) => self
                .rt
                .block_on(self.handle.link().del(index).execute())
                .map_err(|e| failed(&format!("remove {name}"), e)),
        }
    }

    /// A veth pair: `host` on `bridge` (up, as an isolated port: it talks to the bridge, not to
    /// the other procs' ports), `peer` moved into the namespace `netns`.
    pub fn veth_into(
        &self,
        host: &str,
        peer: &str,
        bridge: u32,
        netns: BorrowedFd<'_>,
    ) -> Result<(), String> {
        self.remove(host)?;
        let add = self.handle.link().add(LinkVeth::new(host, peer).build()).execute();
        self.rt.block_on(add).map_err(|e| failed(&format!("create veth {host}"), e))?;
        let peer_index = self.must_index(peer)?;
        let moved = self
            .handle
            .link()
            .set(LinkUnspec::new_with_index(peer_index).setns_by_fd(netns.as_raw_fd()).build());
        self.rt
            .block_on(moved.execute())
            .map_err(|e| failed(&format!("move {peer} into the proc's namespace"), e))?;
        let index = self.must_index(host)?;
        let attach =
            self.handle.link().set(LinkUnspec::new_with_index(index).controller(bridge).up().build());
        self.rt.block_on(attach.execute()).map_err(|e| failed(&format!("attach {host} to the bridge"), e))?;
        let isolate = self.handle.link().set_port(LinkBridgePort::new(index).isolated(true).build());
        self.rt.block_on(isolate.execute()).map_err(|e| failed(&format!("isolate bridge port {host}"), e))
    }

    /// Inside a proc's namespace: loopback up, `peer` renamed to `eth0` with `address/prefix`,
    /// and the default route through `gateway`.
    pub fn configure_inside(
        &self,
        peer: &str,
        address: Ipv4Addr,
        prefix: u8,
        gateway: Ipv4Addr,
    ) -> Result<(), String> {
        let lo = self.must_index("lo")?;
        self.up(lo, "lo")?;
        let index = self.must_index(peer)?;
        let rename =
            self.handle.link().set(LinkUnspec::new_with_index(index).name("eth0".to_string()).build());
        self.rt.block_on(rename.execute()).map_err(|e| failed(&format!("rename {peer} to eth0"), e))?;
        self.add_address(index, address, prefix, "eth0")?;
        self.up(index, "eth0")?;
        let route = RouteMessageBuilder::<Ipv4Addr>::new().gateway(gateway).output_interface(index).build();
        self.rt
            .block_on(self.handle.route().add(route).execute())
            .map_err(|e| failed(&format!("add the default route via {gateway}"), e))
    }
}

const EEXIST: i32 = nix::errno::Errno::EEXIST as i32;
const ENODEV: i32 = nix::errno::Errno::ENODEV as i32;
