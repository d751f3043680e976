"""Worker processes: entry point, gRPC service, routine execution, parent-death watch."""
