from storyflow.cli import main

raise SystemExit(main())
