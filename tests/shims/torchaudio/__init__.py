"""Test-only stand-in for torchaudio (not installable beside torch 2.14.1 here).

ComfyUI 0.30.0 imports torchaudio at module level in files our tests load (comfy/sd.py via
its audio VAE); with this empty package on sys.path the engine starts. No audio node is used,
so nothing here is ever called. Only put on sys.path when the real torchaudio is missing.
"""

__version__ = "0.0.0+gan-studio-test-shim"
