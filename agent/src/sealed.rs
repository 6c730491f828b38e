//! A program held in a sealed memfd: the only way the agent executes a
//! release. The data partition is mounted `noexec` and the agent never runs a
//! file it can write: the launcher and the updater's self-test copy the
//! bytes into an anonymous memory file, seal it against any change
//! (`F_SEAL_WRITE | SHRINK | GROW | SEAL`), check the sealed bytes against the
//! signed release's artifact, and execute exactly those.

use std::ffi::{CString, OsString};
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::FileExt;
use std::process::Command;

use nix::fcntl::{FcntlArg, SealFlag, fcntl};
use nix::sys::memfd::{MFdFlags, memfd_create};
use vantage_proto::release::{Artifact, ReleaseError};

/// A sealed, checked copy of a program.
#[derive(Debug)]
pub struct Sealed(File);

impl Sealed {
    /// Copies `bytes` into a new memfd named `name`, seals it, and checks
    /// what it then holds against `artifact`.
    pub fn new(name: &str, bytes: &[u8], artifact: &Artifact) -> Result<Sealed, ReleaseError> {
        let io = |e: io::Error| ReleaseError::RolledBack(format!("sealed copy: {e}"));
        let sealed = Sealed::seal(name, bytes).map_err(io)?;
        artifact.check(&sealed.contents().map_err(io)?)?;
        Ok(sealed)
    }

    fn seal(name: &str, bytes: &[u8]) -> io::Result<Sealed> {
        // Not close-on-exec: an interpreter that opens the program by its
        // path after the exec (binfmt_misc without the `O` flag, as qemu-user
        // is registered; a script) needs `/proc/self/fd/N` still open. What
        // inherits the descriptor can only read it: the seals forbid writes.
        let fd = memfd_create(name, MFdFlags::MFD_ALLOW_SEALING)?;
        let mut file = File::from(fd);
        file.write_all(bytes)?;
        let seals = SealFlag::F_SEAL_WRITE
            | SealFlag::F_SEAL_SHRINK
            | SealFlag::F_SEAL_GROW
            | SealFlag::F_SEAL_SEAL;
        fcntl(&file, FcntlArg::F_ADD_SEALS(seals))?;
        Ok(Sealed(file))
    }

    /// What the memfd holds (read back after sealing: what will run).
    fn contents(&self) -> io::Result<Vec<u8>> {
        let len = usize::try_from(self.0.metadata()?.len()).map_err(io::Error::other)?;
        let mut buf = vec![0; len];
        self.0.read_exact_at(&mut buf, 0)?;
        Ok(buf)
    }

    /// A command that runs the sealed program as a child.
    pub fn command(&self) -> Command {
        Command::new(format!("/proc/self/fd/{}", self.0.as_raw_fd()))
    }

    /// Replaces this process with the sealed program, with `args` (the
    /// first is the program's name) and the environment `env`. Returns only
    /// if that failed.
    pub fn exec(self, args: Vec<OsString>, env: Vec<(OsString, OsString)>) -> io::Error {
        let cstrings = |v: Vec<Vec<u8>>| -> Result<Vec<CString>, io::Error> {
            v.into_iter()
                .map(|s| CString::new(s).map_err(io::Error::other))
                .collect()
        };
        let args = cstrings(args.into_iter().map(OsStringExt::into_vec).collect());
        let env = cstrings(
            env.into_iter()
                .map(|(k, v)| {
                    let mut kv = k.into_vec();
                    kv.push(b'=');
                    kv.extend(v.into_vec());
                    kv
                })
                .collect(),
        );
        match (args, env) {
            (Ok(args), Ok(env)) => match nix::unistd::fexecve(&self.0, &args, &env) {
                Err(errno) => errno.into(),
            },
            (Err(e), _) | (_, Err(e)) => e,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_bytes_cannot_change_and_are_checked() {
        let bytes = b"#!/bin/sh\necho sealed\n";
        let sealed = Sealed::new("t", bytes, &Artifact::of(bytes)).unwrap();
        assert_eq!(sealed.contents().unwrap(), bytes);
        let err = sealed.0.write_at(b"X", 0).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(nix::libc::EPERM), "{err}");
        assert!(sealed.0.set_len(1).is_err());
        let err = Sealed::new("t", bytes, &Artifact::of(b"other")).unwrap_err();
        assert_eq!(err.code(), "release-size-mismatch");
    }

    /// A program that needs an interpreter to open it by path after the
    /// exec (a script, or a foreign binary through binfmt_misc as under
    /// qemu-user) runs too: the descriptor must stay open across the exec.
    #[test]
    fn a_sealed_program_run_through_an_interpreter_runs() {
        let script = b"#!/bin/sh\necho sealed\n";
        let sealed = Sealed::new("sh", script, &Artifact::of(script)).unwrap();
        let out = sealed.command().output().unwrap();
        assert!(out.status.success(), "{out:?}");
        assert_eq!(out.stdout, b"sealed\n");
    }

    #[test]
    fn a_sealed_program_runs_from_memory() {
        let me = std::fs::read("/bin/true").unwrap();
        let sealed = Sealed::new("true", &me, &Artifact::of(&me)).unwrap();
        assert!(sealed.command().status().unwrap().success());
    }
}
