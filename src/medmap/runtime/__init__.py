"""How a run runs on this machine: devices and precision, the memory guard, the time box,
checkpoints and resuming, the console and native-crash traces."""
