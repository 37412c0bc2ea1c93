from hostsetup.cli import main

main()
