"""Interop with diffusers / transformers formats (their libraries are optional: imported only when called)."""
