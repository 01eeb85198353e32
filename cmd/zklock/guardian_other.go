//go:build !linux

package main

import (
	"os"
	"syscall"
)

// becomeSubreaper does nothing: only Linux has child subreapers, so a
// process that leaves COMMAND's group escapes the guardian here.
func becomeSubreaper() {}

// commandAttr puts COMMAND in a process group of its own.
func commandAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }

func selfExe() (string, error) { return os.Executable() }

// children is empty: without a subreaper the guardian's only child is
// COMMAND, which its group reaches.
func children() []int { return nil }
