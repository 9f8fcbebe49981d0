"""Probes of the host's own resources and kernel: disk, memory, cpu, processes, fds, kernel log, network, local ports, clock."""
