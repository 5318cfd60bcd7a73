"""What the tests and media/ share, and the product never imports: TensorBoard served (tensorboard_server) and
seen in headless Chromium (headless_chromium), and processes waited for and stopped (processes)."""
