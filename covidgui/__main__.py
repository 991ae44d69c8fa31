import multiprocessing

# In a frozen (PyInstaller) app the Training tab's child process is this executable started by
# multiprocessing (spawn); freeze_support runs the child's code there and exits. No-op otherwise.
multiprocessing.freeze_support()

from covidgui.cli import main  # noqa: E402

raise SystemExit(main())
