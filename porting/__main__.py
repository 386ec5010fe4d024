from porting.cli import main

main()
