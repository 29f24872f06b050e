"""GAN Studio: GANs and VAEs as ComfyUI nodes (V3 schema, comfy_api.v0_0_2).

Kept free of import-time work: ComfyUI-only modules load inside comfy_entrypoint, so tools
that merely import this package (pytest collection, linters) do not need ComfyUI.
"""


async def comfy_entrypoint():
    from .nodes import GanStudioExtension, install_example_inputs, register_model_folders

    # Before the node list is built: the loader's dropdown reads the "gan" folder.
    register_model_folders()
    install_example_inputs()
    return GanStudioExtension()
