from covidgui.cli import main

raise SystemExit(main())
