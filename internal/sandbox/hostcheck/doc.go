// Package hostcheck tests that KVM tests inside the nested-KVM sandbox can
// run the host's own programs (testenv.HostCommand): the host's root file
// system that the sandbox mounts read-only over virtio-9p, chrooted into
// with the sandbox's live /proc, /sys, /dev, /run and /tmp bound over it
// (sandbox.Plan.HostRoot). Its tests are named TestKVM... so that
// `xenvmm-sandbox test` runs them inside; they need no KVM themselves.
package hostcheck
