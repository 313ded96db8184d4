//! Opening the TAP device the appliance's own IP stack runs on.

use std::io;

use smoltcp::phy::{Medium, TunTapInterface};

/// Attaches to (or creates) the TAP device and brings its link up. The kernel side gets no
/// address: it is a port of whatever bridge the operator or test put it in.
pub fn open(name: &str) -> io::Result<TunTapInterface> {
    let device = TunTapInterface::new(name, Medium::Ethernet).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("opening TAP {name}: {e} (needs root or CAP_NET_ADMIN)"),
        )
    })?;
    set_up(name)?;
    Ok(device)
}

fn set_up(name: &str) -> io::Result<()> {
    // SAFETY: plain ioctls on a socket we own, with an ifreq we initialise.
    unsafe {
        let sock = libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0);
        if sock < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut req: libc::ifreq = std::mem::zeroed();
        for (dst, src) in req
            .ifr_name
            .iter_mut()
            .zip(name.bytes().take(libc::IFNAMSIZ - 1))
        {
            *dst = src as libc::c_char;
        }
        let result = if libc::ioctl(sock, libc::SIOCGIFFLAGS, &mut req) < 0 {
            Err(io::Error::last_os_error())
        } else {
            req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            if libc::ioctl(sock, libc::SIOCSIFFLAGS, &req) < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(())
            }
        };
        libc::close(sock);
        result
    }
}
