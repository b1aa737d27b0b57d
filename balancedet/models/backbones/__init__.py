# Registered components: one module per technique, imported here so that
# `custom_imports=dict(imports=['balancedet'])` registers them all.
from . import res_drop_net, ssd7_net  # noqa: F401
