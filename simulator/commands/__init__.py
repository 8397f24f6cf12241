"""The `pingjia sim ...` and `pingjia demo` commands, one module each."""
