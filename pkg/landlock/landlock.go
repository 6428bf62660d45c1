// Package landlock confines a daemon with Linux's Landlock LSM (landlock(7)): after
// RestrictWrites the process may read what its user may read, but it may write, create,
// remove, rename or truncate files only beneath the directories it names, and it may
// execute nothing. A daemon that parses network input and is subverted can then not
// plant a file in a user's home, rewrite the configuration or start a shell, whatever
// its user's file permissions would allow (ARCHITECTURE.md rule 2).
//
// Landlock is per thread. A Go program has many, so the rules are applied to every
// thread at once with syscall.AllThreadsSyscall, which works only in a program built
// without cgo (CGO_ENABLED=0, as the Makefile builds Postern).
package landlock

import (
	"errors"
	"fmt"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ErrUnsupported says that the kernel offers no usable Landlock: none at all, disabled
// at boot, or ABI 1, which cannot allow a rename from one directory to another (Maildir
// tmp/ to new/, the queue's incoming/ to active/) anywhere.
var ErrUnsupported = errors.New("landlock: not offered by this kernel (or only ABI 1)")

// ErrCgo says that the program was built with cgo, so its threads cannot all be
// restricted together.
var ErrCgo = errors.New("landlock: the program is built with cgo; build with CGO_ENABLED=0 to confine every thread")

// The rights Postern handles. Reading (READ_FILE, READ_DIR) is not among them, so it stays
// allowed everywhere; IOCTL_DEV (ABI 5) is left alone too.
const (
	writeRights = unix.LANDLOCK_ACCESS_FS_WRITE_FILE |
		unix.LANDLOCK_ACCESS_FS_REMOVE_DIR |
		unix.LANDLOCK_ACCESS_FS_REMOVE_FILE |
		unix.LANDLOCK_ACCESS_FS_MAKE_CHAR |
		unix.LANDLOCK_ACCESS_FS_MAKE_DIR |
		unix.LANDLOCK_ACCESS_FS_MAKE_REG |
		unix.LANDLOCK_ACCESS_FS_MAKE_SOCK |
		unix.LANDLOCK_ACCESS_FS_MAKE_FIFO |
		unix.LANDLOCK_ACCESS_FS_MAKE_BLOCK |
		unix.LANDLOCK_ACCESS_FS_MAKE_SYM
	// referRight (ABI 2) allows renames and links between directories.
	referRight = unix.LANDLOCK_ACCESS_FS_REFER
	// truncateRight (ABI 3) allows truncate(2) and O_TRUNC.
	truncateRight = unix.LANDLOCK_ACCESS_FS_TRUNCATE
)

// ABI returns the Landlock ABI version the kernel offers, 0 if none.
func ABI() int {
	v, _, errno := syscall.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, 0, 0, unix.LANDLOCK_CREATE_RULESET_VERSION)
	if errno != 0 {
		return 0
	}
	return int(v)
}

// rulesetAttr is struct landlock_ruleset_attr up to handled_access_fs, the part every
// ABI knows (the kernel takes a shorter struct as the older version of a longer one).
type rulesetAttr struct {
	handledAccessFS uint64
}

// RestrictWrites confines the calling process, every thread of it, for the rest of its
// life, as the package comment says: writes only beneath dirs, no execution. It returns
// the ABI it used. The directories must exist. It also sets PR_SET_NO_NEW_PRIVS on
// every thread, which Landlock requires of an unprivileged process.
func RestrictWrites(dirs ...string) (int, error) {
	abi := ABI()
	if abi < 2 {
		return abi, ErrUnsupported
	}
	handled := uint64(writeRights | referRight | unix.LANDLOCK_ACCESS_FS_EXECUTE)
	if abi >= 3 {
		handled |= truncateRight
	}
	attr := rulesetAttr{handledAccessFS: handled}
	fd, _, errno := syscall.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET,
		uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr), 0)
	if errno != 0 {
		return abi, fmt.Errorf("landlock: creating the ruleset: %w", errno)
	}
	ruleset := int(fd)
	defer unix.Close(ruleset)

	// Beneath each directory: everything handled except execution.
	allowed := handled &^ unix.LANDLOCK_ACCESS_FS_EXECUTE
	for _, dir := range dirs {
		if err := addPathRule(ruleset, dir, allowed); err != nil {
			return abi, err
		}
	}

	// restrict_self requires no_new_privs (or CAP_SYS_ADMIN) of each thread.
	if _, _, errno := syscall.AllThreadsSyscall(syscall.SYS_PRCTL, unix.PR_SET_NO_NEW_PRIVS, 1, 0); errno != 0 {
		if errno == syscall.ENOTSUP {
			return abi, ErrCgo
		}
		return abi, fmt.Errorf("landlock: setting no_new_privs: %w", errno)
	}
	if _, _, errno := syscall.AllThreadsSyscall(unix.SYS_LANDLOCK_RESTRICT_SELF, uintptr(ruleset), 0, 0); errno != 0 {
		if errno == syscall.ENOTSUP {
			return abi, ErrCgo
		}
		return abi, fmt.Errorf("landlock: restricting the threads: %w", errno)
	}
	return abi, nil
}

func addPathRule(ruleset int, dir string, allowed uint64) error {
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("landlock: opening %s: %w", dir, err)
	}
	defer unix.Close(fd)
	attr := unix.LandlockPathBeneathAttr{Allowed_access: allowed, Parent_fd: int32(fd)}
	_, _, errno := syscall.Syscall6(unix.SYS_LANDLOCK_ADD_RULE, uintptr(ruleset), unix.LANDLOCK_RULE_PATH_BENEATH,
		uintptr(unsafe.Pointer(&attr)), 0, 0, 0)
	if errno != 0 {
		return fmt.Errorf("landlock: allowing writes beneath %s: %w", dir, errno)
	}
	return nil
}
