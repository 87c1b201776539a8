// Package config reads xl/xm domain configuration files (xl.cfg(5)) into a
// typed Domain.
//
// # The language
//
// The grammar is the one xl uses, from tools/libs/util/libxlu_cfg_l.l (lexer)
// and libxlu_cfg_y.y (parser), with the helpers in libxlu_cfg.c:
//
//   - A file is a sequence of statements "KEY = VALUE" or "KEY += VALUE",
//     each ended by a newline or ';'. Empty statements are allowed and the
//     last statement needs no newline.
//   - A KEY is [a-z][._0-9a-z]*.
//   - A VALUE is a string in single or double quotes (no newlines; escapes
//     \" \' \\ \a \b \f \n \r \t \v \xHH \OOO), a number [0-9][0-9a-fx]*
//     (decimal, 0x hex or 0 octal, converted with strtol(…, 0) where a
//     number is wanted), or a list "[ VALUE, ... ]" that may be nested, may
//     span lines, and may end with a comma.
//   - '#' starts a comment that runs to the end of the line, after a value
//     or on a line of its own.
//   - "+=" appends a list to a list or a string to a string
//     (xlu__cfg_concat_vals); mixing the two is a syntax error. "+=" on a
//     number key makes it unusable as a number, as in xl.
//   - A key set twice keeps the last value (xl's find() returns the newest
//     setting); Parse warns about it.
//   - xl keeps every atom as a string, so a quoted "128" is a valid memory
//     size and an unquoted 0x1 a valid name; Value keeps the text and
//     converts on use.
//
// Deliberate extensions over libxlu, all of which xl would reject: Python's
// True and False as booleans (xm configs use them), a '-' sign on a number,
// upper-case hex digits in a number, "\r\n" line endings, and a comment on
// the last line without a newline. libxlu's \x and \OOO escapes are buggy
// (the first always fails, the second drops the character); they are
// implemented here as Python and the code's intent define them.
//
// # Errors
//
// ParseSettings reports the first malformed token or statement as a
// *SyntaxError "file:line:col: what was expected" (matched by ErrSyntax).
// Parse then interprets the keys xenvmm knows; every bad value is a
// *ValueError carrying the position of that value (inside a spec string
// where possible) and the key, for example
//
//	nbsd.cfg:46:25: disk[0]: bad vdev "qq": expected a name like xvda/hda1/xbd0 or a number like 0x301
//
// and all of them are returned together, in file order, with errors.Join.
// Keys xenvmm does not use are kept in Domain.Unknown and reported as
// Warnings, never errors. Whether the files a config names exist is not a
// parse question: (*Domain).CheckHost answers it with *HostErrors that name
// the key and the value (the seed configs name NetBSD's /dev/wd0e).
// (*Domain).Validate says whether xenvmm can run the domain: type = "hvm"
// and bootloader= parse, but are reported there as ErrUnsupported.
//
// # Keys
//
// The typed keys follow tools/xl/xl_parse.c (parse_config_data) and
// docs/man/xl.cfg.5.pod.in: name, type, builder, kernel, ramdisk, cmdline,
// root, extra (the command line is built as parse_cmdline does), memory,
// maxmem, vcpus, maxvcpus, on_poweroff, on_reboot, on_watchdog, on_crash,
// on_soft_reset, bootloader, bootloader_args, uuid, disk, vif, pci and its
// defaults pci_permissive, pci_msitranslate, pci_power_mgmt, pci_seize, and
// xm's nics.
//
// Defaults are xl's and libxl's: type pv, vcpus 1, maxvcpus = vcpus,
// memory 32 MiB when neither memory nor maxmem is given, maxmem = memory,
// on_poweroff/on_watchdog/on_crash destroy, on_reboot restart,
// on_soft_reset soft-reset. Sizes are bounded (MaxMemory, MaxVCPUs) so
// that nothing overflows; the VMM checks the host's real limits.
//
// Device specs have their own small languages:
//
//   - disk: docs/man/xl-disk-configuration.5.pod.in, parsed as
//     tools/libs/util/libxlu_disk_l.l does (ParseDisk), both the key=value
//     form and the positional ones, including xm's "phy:", "file:",
//     "tap:aio:" prefixes and "VDEV:cdrom". Two deliberate differences:
//     blanks before a ',' are ignored, and an empty target is an error
//     unless the disk is a cdrom (libxl fails on it later).
//   - vdev numbers: computed as libxl__device_disk_dev_number in
//     tools/libs/light/libxl_device.c, per docs/man/xen-vbd-interface.7
//     (VDevNumber), extended as xend's blkif.py was to Linux's hde..hdt and
//     sdq..sdiv majors, and to NetBSD's xbdN (disk N in the xvd scheme).
//   - vif: docs/man/xl-network-configuration.5.pod.in and parse_nic_config
//     in tools/xl/xl_parse.c, with rates as in libxlu_vif.c (ParseVif);
//     MAC addresses must be six hex octets.
//   - pci: docs/man/xl-pci-configuration.5.pod and libxlu_pci.c
//     (ParsePCI), with the '*' function wildcard, "@VSLOT" and the
//     pci_* defaults.
package config
