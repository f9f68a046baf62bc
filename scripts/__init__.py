"""Shell scripts that ship inside the package as ``gpuready._scripts`` (bootstrap.sh, which
``gpuready cloud.user-data`` embeds in cloud-init user-data)."""
