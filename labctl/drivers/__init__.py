"""Lab drivers (they make and destroy lab hosts): see ``registry.py`` for the layout and how to
add one."""
