//go:build !linux

package main

// stopWithParent does nothing where the kernel has no parent-death signal.
func stopWithParent() {}
