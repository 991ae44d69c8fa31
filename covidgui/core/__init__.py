"""Everything CovidGUI computes, with no Qt import, ever.

Modules are imported on demand (``from covidgui.core import images``) so that importing this
package stays cheap: TensorFlow is only imported by :mod:`covidgui.core.model` and
:mod:`covidgui.core.training`, and only when a model is loaded or trained.
"""
