"""`python -m longtasks ...` runs the `longtasks` command (e.g. under `accelerate launch -m longtasks eval ...`)."""

from longtasks.cli import main

if __name__ == "__main__":
    main()
