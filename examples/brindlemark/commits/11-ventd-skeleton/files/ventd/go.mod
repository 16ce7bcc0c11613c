module orrinvale.example/brindlemark/ventd

go 1.22
