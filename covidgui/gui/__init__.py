"""The Qt user interface. It shows what :mod:`covidgui.core` computes and holds no ML logic."""
